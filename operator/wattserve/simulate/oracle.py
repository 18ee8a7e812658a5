"""The hindsight oracle: the fewest replicas per decision interval that meet the SLO,
knowing the whole trace, under the same cold start, maximum and data plane.

The oracle is a replica schedule ``n[k]`` per interval ``k`` (60 s by default, the
SLO-attainment window) played by :class:`SchedulePolicy` in the ordinary simulator, so
it is judged exactly like every policy. Replicas for interval ``k`` are requested a
cold start (plus one tick) before it begins, so they are ready when it starts; a drop
that would be followed by a rise within a cold start is skipped (re-starting costs at
least as much as staying). It is found in three steps:

1. **Per interval, in isolation**: the smallest count whose simulated p95 (and p95 TTFT)
   of the interval's arrivals meets the SLO, simulating the previous interval as warm-up
   on the same count (so work carried over is counted). The search gallops from the
   previous interval's answer, so it costs a few short simulations per interval.
   An interval that even ``max_replicas`` cannot bring under the SLO is *infeasible*; it
   gets the smallest count within 5 % of the best achievable p95.
2. **Repair on the full run**: the schedule is simulated end to end; every feasible
   minute that misses the SLO (interference between intervals, drains, routing) gets one
   more replica, and this repeats until every feasible minute passes (bounded).
3. **Static fallback**: the hindsight-optimal static count, when it also meets every
   feasible minute at fewer replica-hours, is the oracle's answer instead.

"Meets the SLO" for the oracle means *every feasible minute*, a stricter bar than the
99 % attainment asked of policies, so a policy at 99 % may come out slightly below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wattserve.autoscale.performance import PerformanceModel
from wattserve.simulate.baselines import StaticPolicy
from wattserve.simulate.engine import ClusterView, SimResult, Simulation
from wattserve.simulate.report import minute_ok, minute_p95s, percentile
from wattserve.simulate.trace import TraceRequest

INTERVAL_S = 60.0
TICK_S = 5.0
MAX_REPAIR_ROUNDS = 25
INFEASIBLE_SLACK = 1.05


@dataclass
class SchedulePolicy:
    """Plays a per-interval replica schedule, provisioning a cold start ahead."""

    schedule: list[int]
    lead_s: float  # cold start: how early replicas for an interval are requested
    interval_s: float = TICK_S  # tick (the engine's policy interval)
    decision_s: float = INTERVAL_S  # length of one schedule interval
    name: str = "oracle"
    floor: int = 0  # replicas when the schedule is over (no traffic left)

    def desired_at(self, t: float) -> int:
        """Max of the schedule over [t, t + lead + tick): keeps what is needed now and
        what must be ready when a coming interval starts."""
        k0 = int(t // self.decision_s)
        k1 = int((t + self.lead_s + self.interval_s - 1e-9) // self.decision_s)
        window = self.schedule[max(k0, 0):min(k1 + 1, len(self.schedule))]
        return max(window) if window else self.floor

    def initial(self, view: ClusterView) -> int:
        return self.desired_at(0.0)

    def tick(self, view: ClusterView) -> int:
        return self.desired_at(view.now)


@dataclass(frozen=True)
class OracleInputs:
    trace: Sequence[TraceRequest]
    perf: PerformanceModel
    slo_s: float
    ttft_slo_s: float | None
    min_replicas: int  # 0 allows scale to zero
    max_replicas: int
    interval_s: float = INTERVAL_S


@dataclass
class OracleResult:
    result: SimResult
    schedule: list[int]
    infeasible: set[int] = field(default_factory=set)  # minutes no count could meet
    source: str = "schedule"  # or "static N"
    rounds: int = 0


def _interval_p95(trace: Sequence[TraceRequest], perf: PerformanceModel, n: int,
                  start: float, end: float, warm_from: float) -> tuple[float, float]:
    """p95 latency and TTFT of arrivals in [start, end) on ``n`` warm replicas, replaying
    arrivals from ``warm_from`` (warm-up) to ``end``."""
    sub = [TraceRequest(r.arrival_s - warm_from, r.prompt_tokens, r.gen_tokens)
           for r in trace if warm_from <= r.arrival_s < end]
    res = Simulation(sub, perf, StaticPolicy(max(n, 0), interval_s=1e9),
                     activate_from_zero=False).run()
    lo = start - warm_from
    lat = sorted(q.finish - q.arrival for q in res.requests if q.arrival >= lo)
    ttft = sorted(q.first_token - q.arrival for q in res.requests if q.arrival >= lo)
    if not lat:
        return 0.0, 0.0
    p95, t95 = percentile(lat, 0.95), percentile(ttft, 0.95)
    return (math.inf if math.isnan(p95) else p95), (math.inf if math.isnan(t95) else t95)


def _isolated_schedule(inp: OracleInputs, say: Callable[[str], None]
                       ) -> tuple[list[int], set[int]]:
    trace, iv = inp.trace, inp.interval_s
    horizon = max((r.arrival_s for r in trace), default=0.0)
    k_max = int(horizon // iv)
    counts = [0] * (k_max + 1)
    for r in trace:
        counts[int(r.arrival_s // iv)] += 1
    lo = max(inp.min_replicas, 1)
    hi = max(inp.max_replicas, lo)
    schedule: list[int] = []
    infeasible: set[int] = set()
    prev = lo
    for k in range(k_max + 1):
        if counts[k] == 0:
            schedule.append(inp.min_replicas)
            continue
        start, end = k * iv, (k + 1) * iv
        warm = max(0.0, start - iv)
        cache: dict[int, tuple[float, float]] = {}

        def p95_at(n: int, _s: float = start, _e: float = end, _w: float = warm,
                   _c: dict[int, tuple[float, float]] = cache) -> tuple[float, float]:
            if n not in _c:
                _c[n] = _interval_p95(trace, inp.perf, n, _s, _e, _w)
            return _c[n]

        slo, tslo = inp.slo_s, inp.ttft_slo_s

        def ok(n: int, _slo: float = slo, _tslo: float | None = tslo) -> bool:
            p, t = p95_at(n)
            return minute_ok(p, t, _slo, _tslo)

        n = min(max(prev, lo), hi)
        if ok(n):
            while n > lo and ok(n - 1):
                n -= 1
        else:
            step = 1
            while n < hi and not ok(n):  # gallop up, then bisect back
                nxt = min(hi, n + step)
                if ok(nxt):
                    a, b = n, nxt  # fails at a, passes at b
                    while b - a > 1:
                        mid = (a + b) // 2
                        a, b = (a, mid) if ok(mid) else (mid, b)
                    n = b
                    break
                n, step = nxt, step * 2
            if not ok(n):  # even hi misses: aim within 5 % of the best achievable
                infeasible.add(k)
                best_p, best_t = p95_at(hi)
                slack_slo = max(slo, best_p * INFEASIBLE_SLACK)
                slack_t = None if tslo is None else max(tslo, best_t * INFEASIBLE_SLACK)
                n = hi
                while n > lo and minute_ok(*p95_at(n - 1), slack_slo, slack_t):
                    n -= 1
        schedule.append(n)
        prev = n
        if k and k % 60 == 0:
            say(f"    oracle: interval {k}/{k_max + 1}")
    return schedule, infeasible


def failing_minutes(result: SimResult, slo_s: float, ttft_slo_s: float | None,
                    window_s: float = INTERVAL_S) -> set[int]:
    return {k for k, (_n, p, t) in minute_p95s(result, window_s).items()
            if not minute_ok(p, t, slo_s, ttft_slo_s)}


def meets_slo(result: SimResult, inp: OracleInputs, infeasible: set[int]) -> bool:
    """Every minute that some replica count can bring under the SLO is under it."""
    return failing_minutes(result, inp.slo_s, inp.ttft_slo_s) <= infeasible


def run_schedule(inp: OracleInputs, schedule: list[int]) -> SimResult:
    policy = SchedulePolicy(list(schedule), inp.perf.cold_start_s,
                            decision_s=inp.interval_s, floor=inp.min_replicas)
    return Simulation(inp.trace, inp.perf, policy,
                      activate_from_zero=inp.min_replicas == 0).run()


def oracle(inp: OracleInputs, *, static: Callable[[int], SimResult] | None = None,
           say: Callable[[str], None] | None = None) -> OracleResult:
    """The hindsight oracle for ``inp``; ``static(n)`` runs static ``n`` (for step 3)."""
    tell = say or (lambda _msg: None)
    schedule, infeasible = _isolated_schedule(inp, tell)
    hi = max(inp.max_replicas, 1)
    result = run_schedule(inp, schedule)
    rounds = 0
    while rounds < MAX_REPAIR_ROUNDS:
        bad = failing_minutes(result, inp.slo_s, inp.ttft_slo_s, inp.interval_s) - infeasible
        fixable = [k for k in bad if k < len(schedule) and schedule[k] < hi]
        if not fixable:
            infeasible |= bad  # at the maximum and still missing: nothing more to do
            break
        for k in fixable:
            schedule[k] += 1
        rounds += 1
        result = run_schedule(inp, schedule)
    out = OracleResult(result, schedule, infeasible, "schedule", rounds)
    if static is not None:
        best = _cheapest_static(inp, static, infeasible, max(schedule, default=1))
        if best is not None and _hours(best[1]) < _hours(result):
            out = OracleResult(best[1], [best[0]] * len(schedule), infeasible,
                               f"static {best[0]}", rounds)
    out.result.policy = "oracle"
    return out


def _cheapest_static(inp: OracleInputs, static: Callable[[int], SimResult],
                     infeasible: set[int], upper: int) -> tuple[int, SimResult] | None:
    """Smallest static count meeting every feasible minute (bisection below ``upper``)."""
    lo, hi = max(inp.min_replicas, 1), max(upper, 1)
    found: tuple[int, SimResult] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        res = static(mid)
        if meets_slo(res, inp, infeasible):
            found, hi = (mid, res), mid - 1
        else:
            lo = mid + 1
    return found


def _hours(result: SimResult) -> float:
    return sum(((r.stopped_at if r.stopped_at is not None else result.end_s)
                - r.requested_at) for r in result.replicas) / 3600.0
