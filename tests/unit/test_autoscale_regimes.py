"""The policy learns only from windows that hold one traffic regime, and holds capacity
through lulls once steps faster than its start-up time have caught it twice (issue 13:
the trace bank's on/off and flash traces)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from wattserve.autoscale.forecast import rate_changed
from wattserve.autoscale.model import Reason, ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide
from wattserve.autoscale.queueing import Capacity

CPU = Capacity.from_rates(100.0, 100.0, 1, 1000.0)  # 100 + 100 tokens: 1.1 s
SPEC = ScalingInputs(slo_p95_ms=5000, capacity=CPU, max_replicas=40, cold_start_s=15.0,
                     scale_down_delay_s=60.0, expected_prompt_tokens=100,
                     expected_gen_tokens=100, metrics_window_s=60.0)


def obs(rate: float, gen: float = 100.0, **kw: float) -> Observation:
    return Observation(request_rate=rate, prompt_tps=100.0 * rate,
                       generation_tps=gen * rate, **kw)


def run(spec: ScalingInputs, state: ScalerState, observations: list[Observation],
        t0: float = 0.0) -> tuple[ScalerState, float]:
    t = t0
    for o in observations:
        _, state = decide(spec, state, o, t)
        t += 15.0
    return state, t


def test_poisson_noise_between_ticks_is_no_regime_change_but_a_step_is() -> None:
    rng = random.Random(5)
    rate, window, dt = 8.0, 60.0, 15.0
    # Two windows 15 s apart share 45 s of arrivals; simulate them from Poisson counts.
    changes = 0
    for _ in range(500):
        a = _poisson(rng, rate * dt)
        b = _poisson(rng, rate * dt)
        mid = _poisson(rng, rate * (window - dt))
        changes += rate_changed((mid + b) / window, (a + mid) / window, dt, window)
    assert changes <= 10  # 3 standard deviations: ~0.3 % by chance, at most 2 % here
    assert rate_changed(16.0, 8.0, dt, window)  # a doubling within a tick
    assert rate_changed(2.0, 8.0, dt, window)  # a drop
    assert rate_changed(8.0, None, dt, window)  # the first observation: nothing known


def _poisson(rng: random.Random, mean: float) -> int:
    n, t = 0, rng.expovariate(1.0)
    while t < mean:
        n += 1
        t += rng.expovariate(1.0)
    return n


def test_a_window_of_stragglers_after_the_load_fell_does_not_refit_the_model() -> None:
    # 3 req/s on 6 replicas for 5 minutes: calibrated (speed 1, correction ~1).
    state, t = run(SPEC, ScalerState(replicas=6), [obs(3.0, in_flight=3.3,
                                                       p95_latency_s=2.2)] * 20)
    speed, corr = state.speed, state.tail_correction
    assert speed == pytest.approx(1.0, rel=0.05) and corr != 1.0  # fitted
    # The load falls to 0.3 req/s; the window's completions are the busy period's long
    # stragglers (p95 four times the model's, outputs 5x the mean, few in flight).
    after, _ = run(SPEC, state, [obs(0.3, gen=500.0, in_flight=0.2, p95_latency_s=9.0)], t)
    assert after.speed == speed and after.tail_correction == corr
    assert after.gen_tokens == pytest.approx(state.gen_tokens or 0.0)


def test_a_settled_window_does_refit_the_model() -> None:
    state, t = run(SPEC, ScalerState(replicas=6), [obs(3.0, in_flight=3.3,
                                                       p95_latency_s=2.2)] * 20)
    # Replicas turn twice as slow and stay so: after a window of one regime it is learned.
    slow, _ = run(SPEC, state, [obs(3.0, in_flight=6.6, p95_latency_s=4.4)] * 30, t)
    assert slow.speed == pytest.approx(0.5, rel=0.15)
    assert slow.tail_correction > state.tail_correction


def test_the_plan_uses_learned_lengths_when_the_window_mixes_regimes() -> None:
    state, t = run(SPEC, ScalerState(replicas=6), [obs(3.0, in_flight=3.3)] * 20)
    assert state.gen_tokens == pytest.approx(100.0, rel=0.01)
    # Right after a drop, the completions are the long ones: planning for 10x outputs
    # would call for replicas an idle trace does not need.
    mixed, _ = decide(replace(SPEC, current_replicas=6), state,
                      obs(1.0, gen=1000.0, in_flight=1.1), t)
    naive, _ = decide(replace(SPEC, current_replicas=6), ScalerState(replicas=6),
                      obs(1.0, gen=1000.0, in_flight=1.1), t)
    assert mixed.desired_replicas <= 6 < naive.desired_replicas


def _steps(spec: ScalingInputs, steps: int) -> tuple[ScalerState, list[str], float]:
    """``steps`` on/off cycles of a GPU-like deployment (180 s start-up): 1 req/s off,
    a step to 12 req/s that queues on the ready replicas while added ones start, then
    the new level served; the replicas added become ready after the start-up time."""
    state, t, reasons = ScalerState(replicas=2), 0.0, []
    current, ready_at = 2, [0.0, 0.0]

    def tick(o: Observation) -> None:
        nonlocal state, t, current, ready_at
        ready = sum(1 for r in ready_at if r <= t)
        d, state = decide(replace(spec, current_replicas=current, ready_replicas=ready),
                          state, o, t)
        if d.desired_replicas > current:
            ready_at += [t + 180.0] * (d.desired_replicas - current)
        else:
            ready_at = sorted(ready_at)[:d.desired_replicas]
        current = d.desired_replicas
        reasons.append(d.reason)
        t += 15.0

    for _ in range(steps):
        for _ in range(60):  # 15 min off
            tick(obs(1.0, in_flight=1.1, p95_latency_s=2.2))
        ready = sum(1 for r in ready_at if r <= t)
        for _ in range(14):  # the step: queued, over the SLO, until capacity arrives
            ready = sum(1 for r in ready_at if r <= t)
            short = ready < 12
            tick(obs(12.0 if not short else float(ready) / 1.1, in_flight=float(ready),
                     queued=30.0 if short else 0.0,
                     p95_latency_s=20.0 if short else 2.5))
        for _ in range(40):  # 10 min on, served
            tick(obs(12.0, in_flight=13.2, p95_latency_s=2.5))
    return state, reasons, t


def test_steps_faster_than_the_startup_time_that_recur_hold_capacity_through_the_lull() -> None:
    spec = replace(SPEC, cold_start_s=180.0, scale_down_delay_s=60.0)
    once, reasons1, _ = _steps(spec, 1)
    assert len(once.late_episodes) == 1
    assert Reason.RECURRING_BURSTS.value not in reasons1
    twice, _, t = _steps(spec, 2)
    assert len(twice.late_episodes) == 2
    held, _ = decide(replace(spec, current_replicas=12, ready_replicas=12), twice,
                     obs(1.0, in_flight=1.1, p95_latency_s=2.2), t + 600.0)
    assert held.desired_replicas >= twice.peak_replicas >= 12 * 0.7
    assert held.reason in (Reason.RECURRING_BURSTS.value, Reason.STABILIZING.value)
    # ... and once the memory of the misses has passed, the lull is served as it is.
    later, _ = decide(replace(spec, current_replicas=12, ready_replicas=12), twice,
                      obs(1.0, in_flight=1.1, p95_latency_s=2.2), t + 4 * 3600.0)
    assert later.desired_replicas < 12


def test_one_step_leaves_no_hold_after_the_load_stops() -> None:
    spec = replace(SPEC, cold_start_s=180.0, scale_down_delay_s=60.0)
    state, _, t = _steps(spec, 1)
    d, _ = decide(replace(spec, current_replicas=12, ready_replicas=12), state,
                  obs(1.0, in_flight=1.1, p95_latency_s=2.2), t + 600.0)
    assert d.reason != Reason.RECURRING_BURSTS.value
    assert d.desired_replicas < state.peak_replicas / 2  # the lull's own need, not the step's


def test_state_with_learned_lengths_round_trips() -> None:
    state, _ = run(SPEC, ScalerState(replicas=6), [obs(3.0, in_flight=3.3)] * 6)
    assert state.steady_since is not None and state.gen_tokens is not None
    assert ScalerState.from_dict(state.to_dict()) == state


def test_saturated_replicas_plan_for_what_arrives_not_what_they_complete() -> None:
    # 3 replicas, each serving one sequence, complete ~2.7 req/s whatever arrives. The
    # same observation (170 queued) after a backlog of 23 (growing 10 requests a second:
    # ~12.7 req/s arrive) or after the same 173 (not growing).
    spec = replace(SPEC, current_replicas=3, ready_replicas=3, max_scale_up_step=100,
                   max_replicas=200, slo_p95_ms=60000)
    _, grew = decide(spec, ScalerState(replicas=3), obs(2.7, in_flight=3.0, queued=20.0), 0.0)
    _, held = decide(spec, ScalerState(replicas=3), obs(2.7, in_flight=3.0, queued=170.0), 0.0)
    now = obs(2.7, in_flight=3.0, queued=170.0)
    growing, _ = decide(spec, grew, now, 15.0)
    flat, _ = decide(spec, held, now, 15.0)
    assert growing.extra["planRate"] == pytest.approx(flat.extra["planRate"] + 10.0, rel=0.05)
    assert growing.desired_replicas > flat.desired_replicas
