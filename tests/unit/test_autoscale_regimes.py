"""The policy learns only from windows that hold one traffic regime, and only misses that
more replicas would have prevented widen its headroom (issue 13: the trace bank's on/off
and flash traces, where a load that falls leaves the window full of the busy period's
stragglers)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from wattserve.autoscale.forecast import rate_changed
from wattserve.autoscale.model import ScalerState, ScalingInputs
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


def test_slow_requests_on_idle_replicas_do_not_widen_the_margin() -> None:
    # The p95 is over the SLO, but 4 replicas hold 0.5 sequences: long requests, not a
    # shortage. Many such ticks must not buy standing headroom.
    idle = [obs(0.5, in_flight=0.5, queued=0.0, p95_latency_s=9.0)] * 40
    state, _ = run(replace(SPEC, ready_replicas=4, current_replicas=4),
                   ScalerState(replicas=4), idle)
    assert state.violations == 0.0
    # The same p95 with a queue on every replica is a shortage and is remembered.
    busy = [obs(3.6, in_flight=4.0, queued=6.0, p95_latency_s=9.0)] * 4
    state, _ = run(replace(SPEC, ready_replicas=4, current_replicas=4),
                   ScalerState(replicas=4), busy)
    assert state.violations > 0.0
    assert math.isfinite(state.violations)


def test_state_with_learned_lengths_round_trips() -> None:
    state, _ = run(SPEC, ScalerState(replicas=6), [obs(3.0, in_flight=3.3)] * 6)
    assert state.steady_since is not None and state.gen_tokens is not None
    assert ScalerState.from_dict(state.to_dict()) == state
