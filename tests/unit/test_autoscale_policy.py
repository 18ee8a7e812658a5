"""The pure autoscaling policy: decide(spec, state, obs, now)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from wattserve.autoscale.model import Decision, Goal, Reason, ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide
from wattserve.autoscale.queueing import Capacity

# A one-sequence-at-a-time CPU replica: 100 tok/s decode, 1000 tok/s prefill. A request
# of 100 prompt + 100 output tokens takes 1.1 s.
CPU = Capacity.from_rates(100.0, 100.0, 1, 1000.0)
SPEC = ScalingInputs(
    slo_p95_ms=5000, capacity=CPU, min_replicas=1, max_replicas=20, target_utilization=0.7,
    scale_down_delay_s=60.0, cold_start_s=15.0, usd_per_hour_per_replica=0.2,
    idle_watts_per_replica=10.0, max_watts_per_replica=30.0,
    expected_prompt_tokens=100, expected_gen_tokens=100,
)


def load(rate: float, **kw: float | None) -> Observation:
    """Steady traffic of 100 + 100 token requests at ``rate`` req/s."""
    fields: dict[str, float | None] = {
        "request_rate": rate, "prompt_tps": 100.0 * rate, "generation_tps": 100.0 * rate,
    }
    fields.update(kw)
    return Observation(**fields)  # type: ignore[arg-type]


def step(spec: ScalingInputs, state: ScalerState, obs: Observation | None, now: float
         ) -> tuple[Decision, ScalerState]:
    return decide(spec, state, obs, now)


def test_more_traffic_gets_more_replicas_and_the_message_says_why() -> None:
    light, _ = step(SPEC, ScalerState(replicas=10), load(0.5), 100.0)
    heavy, _ = step(SPEC, ScalerState(replicas=10), load(8.0), 100.0)
    assert light.desired_replicas <= 2
    # 8 req/s x 1.1 s = 8.8 busy replicas; at most 70 % utilization -> at least 13.
    assert heavy.desired_replicas >= 13
    assert heavy.reason == Reason.PREDICTED_LOAD.value
    assert "8.00 req/s" in heavy.message and "SLO 5000ms" in heavy.message
    assert heavy.predicted_p95_s is not None and heavy.predicted_p95_s < 5.0


def test_scale_up_per_decision_is_rate_limited_like_hpa() -> None:
    d, _ = step(SPEC, ScalerState(replicas=2), load(8.0), 0.0)
    assert d.desired_replicas == 6  # max(2 x 2, 2 + 4)
    d, _ = step(SPEC, ScalerState(replicas=6), load(8.0), 0.0)
    assert d.desired_replicas == 12  # max(2 x 6, 6 + 4)


def test_chooses_the_smallest_count_meeting_slo_and_utilization() -> None:
    # Planned for the upper edge of the arrival-rate band (4 req/s measured over 60 s:
    # + 1.645 sqrt(4 / 60)); scaling down from 12 uses the 10 % tighter threshold.
    d, _ = step(SPEC, ScalerState(replicas=12), load(4.0), 0.0)
    n = d.desired_replicas
    plan = d.extra["planRate"]
    assert plan == pytest.approx(4.0 + 1.645 * math.sqrt(4.0 / 60.0))
    assert plan * 1.1 / n <= 0.7 * 0.9  # utilization within the (hysteresis) target
    assert plan * 1.1 / (n - 1) > 0.7 * 0.9 or (n - 1) < 1  # one fewer would not be


def test_no_metrics_keeps_replicas_and_flags_the_outage_once() -> None:
    state = ScalerState(replicas=4)
    first, state = step(SPEC, state, None, 10.0)
    second, state = step(SPEC, state, Observation(), 25.0)
    assert first.desired_replicas == second.desired_replicas == 4
    assert first.reason == second.reason == Reason.METRICS_UNAVAILABLE.value
    assert not first.metrics_available
    assert first.outage_started and not second.outage_started
    assert state.outage_since == 10.0
    assert "15s" in second.message
    recovered, state = step(SPEC, state, load(1.0), 40.0)
    assert recovered.metrics_available and state.outage_since is None
    again, _ = step(SPEC, state, None, 55.0)
    assert again.outage_started  # a new outage is a new event


@pytest.mark.parametrize("bad", [
    {"request_rate": math.nan}, {"request_rate": -1.0}, {"p95_latency_s": math.inf},
    {"in_flight": -3.0}, {"queued": math.nan},
])
def test_nonsense_values_are_treated_as_no_metrics(bad: dict[str, float]) -> None:
    d, _ = step(SPEC, ScalerState(replicas=3), replace(load(50.0), **bad), 0.0)
    assert d.desired_replicas == 3 and d.reason == Reason.METRICS_UNAVAILABLE.value


def test_scale_down_waits_for_the_stabilization_window() -> None:
    state = ScalerState(replicas=1)
    d, state = step(SPEC, state, load(5.0), 0.0)
    high = d.desired_replicas
    d, state = step(SPEC, state, load(0.5), 15.0)
    assert d.desired_replicas == high and d.reason == Reason.STABILIZING.value
    d, state = step(SPEC, state, load(0.5), 45.0)
    assert d.desired_replicas == high
    d, state = step(SPEC, state, load(0.5), 75.0)  # the 5 req/s advice is > 60 s old
    assert d.desired_replicas < high


def test_scale_up_delay_takes_the_lowest_recent_recommendation() -> None:
    spec = replace(SPEC, scale_up_delay_s=30.0)
    state = ScalerState(replicas=2, recommendations=((0.0, 2),))
    d, state = step(spec, state, load(5.0), 10.0)
    assert d.desired_replicas == 2  # the 2 recommended at t=0 is still in the window
    d, state = step(spec, state, load(5.0), 40.0)
    assert d.desired_replicas > 2


def test_never_above_max_replicas_and_reports_the_conflict() -> None:
    spec = replace(SPEC, max_replicas=5)
    d, _ = step(spec, ScalerState(replicas=5), load(20.0), 0.0)
    assert d.desired_replicas == 5
    assert d.conflict and d.reason == Reason.MAX_REPLICAS.value
    assert "maxReplicas=5" in d.message


def test_usd_budget_caps_replicas_and_reports_the_conflict() -> None:
    spec = replace(SPEC, max_usd_per_hour=1.0)  # 0.2 $/h each -> 5 replicas
    d, _ = step(spec, ScalerState(replicas=3), load(20.0), 0.0)
    assert d.desired_replicas == 5
    assert d.conflict and d.reason == Reason.USD_BUDGET.value


def test_energy_budget_conflict_is_reported_not_hidden() -> None:
    # 1 req/s x 100 tokens = 100 tok/s; two replicas draw >= 20 W -> >= 0.2 J/token.
    spec = replace(SPEC, max_joules_per_token=0.05)
    d, _ = step(spec, ScalerState(replicas=2), load(1.0), 0.0)
    assert d.conflict and d.reason == Reason.ENERGY_BUDGET.value
    assert d.desired_replicas >= 2  # the SLO still gets its replicas
    assert "maxJoulesPerToken=0.05" in d.message
    ok, _ = step(replace(SPEC, max_joules_per_token=10.0), ScalerState(replicas=2),
                 load(1.0), 0.0)
    assert not ok.conflict


def test_energy_objective_runs_fewer_busier_replicas() -> None:
    cost, _ = step(SPEC, ScalerState(replicas=12), load(6.0), 0.0)
    energy, _ = step(replace(SPEC, goal=Goal.ENERGY), ScalerState(replicas=12), load(6.0), 0.0)
    assert energy.desired_replicas < cost.desired_replicas
    assert energy.predicted_p95_s is not None and energy.predicted_p95_s <= 5.0


def test_min_replicas_zero_is_held_at_one_with_a_reason() -> None:
    spec = replace(SPEC, min_replicas=0)
    d, _ = step(spec, ScalerState(replicas=1), load(0.0, in_flight=0.0), 0.0)
    assert d.desired_replicas == 1
    assert d.reason == Reason.SCALE_TO_ZERO.value and "not implemented" in d.message


def test_observed_slo_violation_scales_up_at_once_despite_an_up_delay() -> None:
    spec = replace(SPEC, scale_up_delay_s=300.0)
    obs = load(2.0, p95_latency_s=9.0, in_flight=4.0, queued=6.0)
    d, _ = step(spec, ScalerState(replicas=4, recommendations=((0.0, 4),)), obs, 10.0)
    assert d.reason == Reason.SLO_VIOLATION.value
    assert d.desired_replicas >= 7  # 4 x min(9/5, 2) = 7.2 -> proportional


def test_long_requests_without_contention_do_not_trigger_the_reactive_guard() -> None:
    obs = load(0.5, p95_latency_s=9.0, in_flight=0.5, queued=0.0)  # idle but slow
    d, _ = step(SPEC, ScalerState(replicas=4), obs, 0.0)
    assert d.reason != Reason.SLO_VIOLATION.value
    assert d.desired_replicas <= 4


def test_replicas_still_starting_count_as_capacity_coming() -> None:
    # 4 busy replicas (3.6 req/s x 1.1 s = 4 in service), 6 queued, p95 over the SLO.
    obs = load(3.6, p95_latency_s=9.0, in_flight=4.0, queued=6.0)
    d1, state = step(SPEC, ScalerState(replicas=4), obs, 0.0)
    assert d1.desired_replicas > 4
    # 10 s later the same (stale) p95 arrives; the new replicas are still starting.
    d2, _ = step(replace(SPEC, ready_replicas=4), state, obs, 10.0)
    assert d2.desired_replicas <= d1.desired_replicas + 1
    assert d2.reason in (Reason.WAITING_FOR_COLD_START.value, Reason.WITHIN_TOLERANCE.value,
                         Reason.PREDICTED_LOAD.value)


def test_slo_tighter_than_an_idle_replica_is_reported_as_unreachable() -> None:
    spec = replace(SPEC, slo_p95_ms=500)  # one request alone takes 1.1 s
    d, _ = step(spec, ScalerState(replicas=2), load(0.5), 0.0)
    assert d.conflict and d.reason == Reason.UNREACHABLE.value
    assert d.desired_replicas < 20  # does not scale to the limit for nothing


def test_an_idle_floor_inside_the_slo_but_inside_the_margin_is_no_conflict() -> None:
    # an idle replica's predicted p95 is 2.2 s: under the 2.5 s SLO, but not under the SLO
    # less the safety margin (1.75 s)
    spec = replace(SPEC, slo_p95_ms=2500)
    d, _ = step(spec, ScalerState(replicas=2), load(0.1), 0.0)
    assert not d.conflict and d.reason != Reason.UNREACHABLE.value


def test_online_calibration_learns_slower_replicas_from_littles_law() -> None:
    # Replicas are twice as slow as seeded: 1 req/s keeps 2.2 sequences in service.
    state = ScalerState(replicas=4)
    for t in range(40):
        _, state = step(SPEC, state, load(1.0, in_flight=2.2), 15.0 * t)
    assert state.speed == pytest.approx(0.5, rel=0.1)
    seeded, _ = step(SPEC, ScalerState(replicas=20), load(3.0), 0.0)
    learned, _ = step(SPEC, replace(state, replicas=20, recommendations=()), load(3.0), 700.0)
    assert learned.desired_replicas > seeded.desired_replicas


def test_state_round_trips_through_json() -> None:
    state = ScalerState(replicas=1)
    for t in range(5):
        _, state = step(SPEC, state, load(3.0, in_flight=3.0, p95_latency_s=2.0), 15.0 * t)
    again = ScalerState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    d1, _ = step(SPEC, state, load(4.0), 100.0)
    d2, _ = step(SPEC, again, load(4.0), 100.0)
    assert d1 == d2


def test_recent_violations_widen_the_safety_margin() -> None:
    calm, _ = step(SPEC, ScalerState(replicas=12), load(6.0), 0.0)
    burned, _ = step(SPEC, ScalerState(replicas=12, violations=0.05), load(6.0), 0.0)
    assert burned.extra["margin"] > calm.extra["margin"] == pytest.approx(SPEC.safety_margin)
    assert burned.desired_replicas > calm.desired_replicas


def test_a_queue_on_every_replica_plans_for_the_served_throughput_not_the_lagging_rate() -> None:
    # The 1 m rate still says 1 req/s, but 4 replicas are busy and 8 requests wait.
    lagging = load(1.0, in_flight=4.0)
    queued = load(1.0, in_flight=4.0, queued=8.0)
    d_lag, _ = step(SPEC, ScalerState(replicas=4), lagging, 0.0)
    d_queue, _ = step(SPEC, ScalerState(replicas=4), queued, 0.0)
    assert d_queue.desired_replicas > d_lag.desired_replicas
    assert d_queue.desired_replicas >= 6  # ~3.6 req/s served + 8 queued / 5 s SLO


def test_forecast_extrapolates_a_rising_rate_when_enabled() -> None:
    spec = replace(SPEC, forecast=True, cold_start_s=120.0)
    state = ScalerState(replicas=10)
    for t, rate in enumerate((1.0, 1.5, 2.0, 2.5)):
        d_on, state = step(spec, state, load(rate), 15.0 * t)
    d_off, _ = step(replace(spec, forecast=False), ScalerState(replicas=10), load(2.5), 45.0)
    assert d_on.desired_replicas > d_off.desired_replicas


def test_a_load_that_stops_is_back_at_the_minimum_after_the_scale_down_delay() -> None:
    # The live check's shape: 2 s ticks, a 10 s rate window, a 10 s scale-down delay, a
    # 20 s load step of 8 req/s (the windowed rate ramps up and down over 10 s), and ready
    # replicas following the decisions one tick later. The rises of the ramp must not
    # keep the stopped load planned for past the delay.
    spec = replace(SPEC, metrics_window_s=10.0, scale_down_delay_s=10.0, cold_start_s=60.0)
    state, current, ready, tick = ScalerState(replicas=1), 1, 1, 2.0
    peak, replicas = 0, {}
    for i in range(60):
        now = i * tick
        # the windowed rate (10 s) of a load sent from t = 20 s to t = 40 s
        rate = sum(8.0 for k in range(10) if 20.0 <= now - k < 40.0) / 10.0
        obs = load(rate, in_flight=rate * 1.1, queued=0.0)
        d, state = step(replace(spec, current_replicas=current, ready_replicas=ready),
                        state, obs, now)
        ready, current = current, d.desired_replicas
        replicas[now] = current
        peak = max(peak, current)
    assert peak >= 8  # the load did scale it up
    rate_zero = 50.0  # the load stopped at 40 s; its last request left the window at 50 s
    assert replicas[rate_zero - tick] > 1  # not before the rate fell
    settled = rate_zero + spec.scale_down_delay_s + tick
    assert all(r == SPEC.min_replicas for t, r in replicas.items() if t >= settled), replicas
