"""Scale to zero in the simulator: a request at zero wakes one replica, waits through the
cold start at the router (counted against the SLO), and the report says so."""

from __future__ import annotations

from wattserve.autoscale.model import ScalingInputs
from wattserve.autoscale.performance import SimplePerformance
from wattserve.autoscale.queueing import Capacity
from wattserve.simulate.baselines import StaticPolicy
from wattserve.simulate.engine import Simulation
from wattserve.simulate.report import summarize, table
from wattserve.simulate.trace import TraceRequest
from wattserve.simulate.wattserve_policy import WattservePolicy, observe

CPU = SimplePerformance(decode_tps_single=100.0, aggregate_tps_max=100.0, max_concurrency=1,
                        prefill_tps=1000.0, cold_start_s=15.0, idle_watts=7.5,
                        max_watts=22.5, usd_per_hour=0.2)
SPEC = ScalingInputs(slo_p95_ms=3000, capacity=Capacity.from_rates(100.0, 100.0, 1, 1000.0),
                     min_replicas=0, max_replicas=4, cold_start_s=15.0,
                     scale_down_delay_s=60.0, expected_prompt_tokens=100,
                     expected_gen_tokens=100)


def _burst(t: float, n: int) -> list[TraceRequest]:
    return [TraceRequest(t + 0.1 * i, 100, 100) for i in range(n)]


def test_a_request_at_zero_wakes_one_replica_and_waits_for_its_cold_start() -> None:
    trace = _burst(10.0, 5)
    res = Simulation(trace, CPU, StaticPolicy(0)).run()
    assert res.cold_starts == 1  # one wake-up however many requests wait
    assert len([r for r in res.replicas]) == 1
    assert all(r.finish == r.finish for r in res.requests)  # none dropped (not NaN)
    assert res.requests[0].held_s == 15.0  # the whole cold start
    assert all(r.held_s > 0 for r in res.requests)
    s = summarize(res, 3.0)
    assert s.cold_starts == 1 and s.held_requests == 5
    assert s.hold_max_s == 15.0
    assert s.slo_attainment == 0.0  # a 15 s hold misses a 3 s SLO: counted, not hidden
    assert "cold_starts" in table([s]) and "held_requests" in table([s])


def test_without_activation_nothing_wakes_and_no_hold_is_reported_for_warm_replicas() -> None:
    trace = _burst(10.0, 3)
    warm = Simulation(trace, CPU, StaticPolicy(1)).run()
    assert warm.cold_starts == 0
    assert summarize(warm, 3.0).held_requests == 0
    assert "cold_starts" not in table([summarize(warm, 3.0)])


def test_wattserve_goes_to_zero_after_the_idle_timeout_and_wakes_on_demand() -> None:
    trace = _burst(5.0, 4) + _burst(2000.0, 4)
    policy = WattservePolicy(SPEC, initial_replicas=1, idle_timeout_s=300.0)
    res = Simulation(trace, CPU, policy).run()
    zero_at = [t for t, n, _ in res.decisions if n == 0]
    assert zero_at and 300.0 <= zero_at[0] - 5.3 < 300.0 + 2 * policy.interval_s
    assert res.cold_starts == 1  # the second burst woke it
    second = [r for r in res.requests if r.arrival >= 2000.0]
    assert all(r.held_s > 0 for r in second)
    s = summarize(res, 3.0)
    # kept a replica for ~5 min, not ~33 min
    assert s.replica_hours < (300.0 + 4 * 15.0 + 400.0) / 3600.0


def test_min_one_never_goes_to_zero() -> None:
    trace = _burst(5.0, 2) + _burst(2000.0, 2)
    spec = ScalingInputs(**{**SPEC.__dict__, "min_replicas": 1})
    res = Simulation(trace, CPU, WattservePolicy(spec, initial_replicas=1)).run()
    assert res.cold_starts == 0 and min(n for _, n, _ in res.decisions) >= 1
    assert WattservePolicy(spec).idle_timeout_s is None  # the operator's cost model


def test_the_servers_latency_histogram_does_not_include_the_activators_hold() -> None:
    trace = _burst(10.0, 3)
    sim = Simulation(trace, CPU, StaticPolicy(0))
    res = sim.run()
    from collections import deque

    from wattserve.simulate.engine import ClusterView

    sim.scraped_at = sim.now  # Prometheus scraped the pods after the last request
    obs = observe(ClusterView(sim), 600.0, deque())
    assert obs.p95_latency_s is not None
    served = max(r.finish - r.arrival - r.held_s for r in res.requests)
    assert served < 5.0
    assert obs.p95_latency_s <= 5.0  # inside the served time's bucket (2.5-5 s), not ~18 s
    assert max(r.finish - r.arrival for r in res.requests) > 15.0  # the client's view
