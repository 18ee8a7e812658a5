"""The simulated replica and the event loop: timings, batching, energy, scaling."""

from __future__ import annotations

import pytest
from wattserve.autoscale.performance import SimplePerformance
from wattserve.simulate.baselines import StaticPolicy
from wattserve.simulate.engine import ClusterView, Simulation
from wattserve.simulate.replica import Replica, Request
from wattserve.simulate.trace import TraceRequest, generate_bursty

CPU = SimplePerformance(decode_tps_single=100.0, aggregate_tps_max=100.0, max_concurrency=1,
                        prefill_tps=1000.0, cold_start_s=10.0, idle_watts=10.0,
                        max_watts=30.0, usd_per_hour=1.0)
GPU = SimplePerformance(decode_tps_single=50.0, aggregate_tps_max=1000.0, max_concurrency=64,
                        prefill_tps=10000.0, cold_start_s=100.0, idle_watts=100.0,
                        max_watts=400.0, usd_per_hour=4.0)


def run_replica(rep: Replica, reqs: list[Request]) -> None:
    pending = sorted(reqs, key=lambda r: r.arrival)
    now = 0.0
    for _ in range(10_000):
        t_next_arrival = pending[0].arrival if pending else float("inf")
        t_event = rep.next_event()
        if t_next_arrival == float("inf") and t_event == float("inf"):
            return
        if t_next_arrival <= t_event:
            now = t_next_arrival
            rep.admit(pending.pop(0), now)
        else:
            now = t_event
            rep.step(now)
    raise AssertionError("replica did not drain")


def test_one_request_takes_prefill_plus_decode_time() -> None:
    rep = Replica(0, CPU, 0.0, 0.0)
    req = Request(0, 1.0, prompt=500, gen=200)
    run_replica(rep, [req])
    assert req.first_token == pytest.approx(1.5)  # 500 / 1000 tok/s prefill
    assert req.finish == pytest.approx(3.5)  # + 200 / 100 tok/s decode


def test_one_at_a_time_replica_queues_the_second_request() -> None:
    rep = Replica(0, CPU, 0.0, 0.0)
    a, b = Request(0, 0.0, 100, 100), Request(1, 0.0, 100, 100)
    run_replica(rep, [a, b])
    assert a.finish == pytest.approx(1.1)
    assert b.start == pytest.approx(1.1) and b.finish == pytest.approx(2.2)


def test_batched_streams_share_the_replica_at_per_stream_speed() -> None:
    rep = Replica(0, GPU, 0.0, 0.0)
    a, b = Request(0, 0.0, 1, 100), Request(1, 0.0, 1, 300)
    run_replica(rep, [a, b])
    two = GPU.per_stream_tps(2)
    assert two < GPU.per_stream_tps(1)
    # Both decode together at the 2-stream speed; b finishes its rest alone.
    assert a.finish == pytest.approx(100 / two, rel=1e-3)
    rest = 300 - 100
    assert b.finish == pytest.approx(a.finish + rest / GPU.per_stream_tps(1), rel=1e-3)


def test_energy_integrates_idle_and_busy_power() -> None:
    rep = Replica(0, CPU, 0.0, 0.0)
    run_replica(rep, [Request(0, 10.0, 1000, 0 + 1)])  # 1 s prefill + 0.01 s decode
    rep.advance(20.0)
    busy = 1.0 + 0.01
    assert rep.energy_j == pytest.approx(30.0 * busy + 10.0 * (20.0 - busy), rel=1e-6)
    assert rep.busy_s == pytest.approx(busy)


def test_static_replicas_cost_replica_hours_for_the_whole_run() -> None:
    trace = [TraceRequest(float(t), 10, 10) for t in range(0, 3600, 60)]
    res = Simulation(trace, CPU, StaticPolicy(3)).run()
    hours = sum((r.stopped_at or res.end_s) - r.requested_at for r in res.replicas) / 3600
    assert hours == pytest.approx(3 * res.end_s / 3600)
    assert all(r.finish > r.arrival for r in res.requests)


class StepUp:
    """Starts with 1 replica and asks for 3 at t=30 s."""

    name = "step"
    interval_s = 30.0

    def initial(self, view: ClusterView) -> int:
        return 1

    def tick(self, view: ClusterView) -> int:
        return 3


def test_new_replicas_serve_only_after_their_cold_start() -> None:
    trace = [TraceRequest(0.5 * i, 10, 200) for i in range(200)]  # 2 req/s, 2 s each
    res = Simulation(trace, CPU, StepUp()).run()
    late = [r for r in res.replicas if r.requested_at > 0]
    assert len(late) == 2
    assert all(r.ready_at == pytest.approx(30.0 + CPU.cold_start_s) for r in late)
    served_by_time = sorted(q.start for q in res.requests)
    # Until t=40 only the first replica serves: one request at a time, 2.1 s each.
    assert sum(1 for t in served_by_time if t < 40.0) <= 40.0 / 2.1 + 1


def test_the_simulation_is_deterministic() -> None:
    trace = [TraceRequest(0.3 * i, 50 + i % 7, 20 + (i * 13) % 90) for i in range(500)]
    r1 = Simulation(trace, GPU, StaticPolicy(2)).run()
    r2 = Simulation(trace, GPU, StaticPolicy(2)).run()
    assert [q.finish for q in r1.requests] == [q.finish for q in r2.requests]
    assert sum(r.energy_j for r in r1.replicas) == sum(r.energy_j for r in r2.replicas)


class _Recorder(StaticPolicy):
    """A static policy that records what the gauges read at each of its ticks."""

    def __init__(self) -> None:
        super().__init__(2, interval_s=15.0)
        self.seen: list[tuple[float, tuple[float, float], int]] = []

    def tick(self, view: ClusterView) -> int:
        self.seen.append((view.now, view.scraped(), view.in_flight() + view.queued()))
        return super().tick(view)


def test_policies_read_gauges_as_last_scraped_not_at_their_own_tick() -> None:
    # A batch of 4 lands exactly on the 15 s tick (traces on a time grid do this): the tick
    # itself must not see it; the next scrape (15 x 1.618 = 24.27 s) does.
    trace = [TraceRequest(15.0, 10, 2000) for _ in range(4)]
    policy = _Recorder()
    Simulation(trace, CPU, policy).run()
    (t1, scraped1, now1), (t2, scraped2, _now2) = policy.seen[:2]
    assert (t1, now1) == (15.0, 4) and scraped1 == (0.0, 0.0)
    assert t2 == 30.0 and scraped2 == (2.0, 2.0)  # 2 replicas busy, 2 requests waiting


@pytest.mark.timeout(30)
def test_a_replica_faster_than_the_clocks_resolution_still_drains() -> None:
    # A model of one parameter: 6.7e9 tokens/s. The decode clock, advanced by time steps
    # rounded to the float clock, fell short of a sequence's end by more than the tolerance
    # while the time left rounded to zero: the next event was "now" for ever.
    tiny = SimplePerformance(decode_tps_single=6.72e9, aggregate_tps_max=6.72e9,
                             max_concurrency=1, prefill_tps=4e10, cold_start_s=15.0,
                             idle_watts=4.0, max_watts=11.0, usd_per_hour=0.08)
    trace = generate_bursty(seed=1, hours=0.05, mean_rate=2.0)[:20]
    result = Simulation(trace, tiny, StaticPolicy(1)).run()
    assert all(r.finish - r.arrival < 1e-6 for r in result.requests)
