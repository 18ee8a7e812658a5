"""The service speed is fitted on the window's time average of the sequences in service
(the duration histogram's sum per second), not on one read of the in-flight gauge, which
arrivals on a clock bias; the gauge's share of that bias is taken out where the policy
reads it for bursts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from wattserve.autoscale.calibration import gauge_scale
from wattserve.autoscale.model import ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.performance import SimplePerformance
from wattserve.autoscale.policy import decide
from wattserve.autoscale.queueing import Capacity
from wattserve.simulate.engine import Simulation
from wattserve.simulate.trace import TraceRequest
from wattserve.simulate.wattserve_policy import WattservePolicy

CPU = Capacity.from_rates(100.0, 100.0, 1, 1000.0)  # 100 + 100 tokens: 1.1 s
SPEC = ScalingInputs(slo_p95_ms=5000, capacity=CPU, max_replicas=40, cold_start_s=15.0,
                     scale_down_delay_s=60.0, expected_prompt_tokens=100,
                     expected_gen_tokens=100, metrics_window_s=60.0)


def _steady(n: int, **kw: float) -> ScalerState:
    state = ScalerState(replicas=8)
    for k in range(n):
        o = Observation(request_rate=4.0, prompt_tps=400.0, generation_tps=400.0,
                        p95_latency_s=1.2, **kw)
        _, state = decide(replace(SPEC, current_replicas=8, ready_replicas=8), state, o,
                          15.0 * k)
    return state


def test_the_speed_comes_from_the_time_average_when_there_is_one() -> None:
    # 4 req/s x 1.1 s = 4.4 in service on average; the gauge reads 3x that at every tick.
    fitted = _steady(40, in_flight=13.2, busy=4.4)
    assert fitted.speed == pytest.approx(1.0, rel=0.02)
    assert gauge_scale(fitted) == pytest.approx(1 / 3, rel=0.05)
    gauge_only = _steady(40, in_flight=13.2)  # no histogram sum: the gauge, as before
    assert gauge_only.speed < 0.6  # fitted to the over-read: the replicas look slow
    assert gauge_scale(gauge_only) == 1.0


def test_a_gauge_that_reads_low_is_never_scaled_up() -> None:
    # Requests queued at a replica count in the histogram's time but not in the gauge.
    assert gauge_scale(_steady(40, in_flight=3.0, busy=4.4)) == 1.0


CPU_REPLICA = SimplePerformance(decode_tps_single=100.0, aggregate_tps_max=100.0,
                                max_concurrency=1, prefill_tps=1000.0, cold_start_s=15.0,
                                idle_watts=10.0, max_watts=30.0, usd_per_hour=1.0)


def test_batches_on_a_clock_do_not_make_the_replicas_look_slower() -> None:
    # 6 requests every 3 s (Mooncake's timestamps sit on a 3 s grid); the scrape every
    # 15 s reads each time 0.27 s after a batch landed.
    trace = [TraceRequest(3.0 * k, 100, 100) for k in range(1200) for _ in range(6)]
    policy = WattservePolicy(replace(SPEC, max_replicas=40), initial_replicas=12)
    Simulation(trace, CPU_REPLICA, policy).run()
    assert policy.state is not None
    assert policy.state.speed == pytest.approx(1.0, abs=0.2)  # the gauge alone: ~0.5
    assert gauge_scale(policy.state) < 0.8
