"""Discrete-event trace replay: arrivals -> router -> replicas, with a scaling policy.

Every policy runs against the same data plane: the same replica model, the same
least-outstanding-requests router, the same cold start and graceful drain. A policy sees
the cluster only through :class:`ClusterView` at its own tick interval.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from wattserve.autoscale.performance import PerformanceModel
from wattserve.simulate.replica import Replica, Request
from wattserve.simulate.trace import TraceRequest


@dataclass
class Completion:
    finish: float
    latency: float
    ttft: float
    prompt: int
    gen: int
    held: float = 0.0  # of ``latency``, time held at the router (not seen by the server)


# Prometheus scrapes the serving pods' series every 15 s (the chart's PodMonitor) at a
# phase that has nothing to do with the trace's clock: the golden-ratio fraction of the
# interval is never a whole number of milliseconds. Policies that read Prometheus see
# the gauges and the windows as of the last scrape.
SCRAPE_EVERY_S = 15.0
SCRAPE_PHASE = 0.6180339887


class ClusterView:
    """What a policy may look at: replicas, gauges and the completion log."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    @property
    def now(self) -> float:
        return self._sim.now

    @property
    def desired(self) -> int:
        return self._sim.desired

    def replicas(self) -> list[Replica]:
        """Replicas that count towards the Deployment's replicas (not draining)."""
        return [r for r in self._sim.replicas if not r.draining and r.stopped_at is None]

    def ready(self) -> list[Replica]:
        now = self._sim.now
        return [r for r in self.replicas() if r.is_ready(now)]

    def in_flight(self) -> int:
        return sum(r.in_service for r in self._sim.replicas if r.stopped_at is None)

    def scraped(self) -> tuple[float, float]:
        """In-flight and queued requests as Prometheus last scraped them: gauges are read
        every ``scrape_every_s`` at a phase of their own, not at the policy's tick, so a
        trace whose arrivals sit on a time grid (Mooncake's 3 s) is not always seen at the
        instant of a batch."""
        return self._sim.scraped

    @property
    def scraped_at(self) -> float:
        """When Prometheus last scraped the pods (0 before the first scrape)."""
        return self._sim.scraped_at

    def router_queued(self) -> int:
        """Requests held at the router because no replica is ready."""
        return len(self._sim.pending)

    def queued(self) -> int:
        live = self._sim.replicas
        return sum(len(r.queue) for r in live if r.stopped_at is None) + len(self._sim.pending)

    @property
    def last_arrival(self) -> float | None:
        """Arrival time of the most recent request (None before the first)."""
        return self._sim.last_arrival

    @property
    def woken_at(self) -> float | None:
        """When a request last woke the model from zero replicas (None: never)."""
        return self._sim.woken_at

    def completions(self, window_s: float, until: float | None = None) -> list[Completion]:
        """Requests completed within ``window_s`` before ``until`` (default: now)."""
        end = self._sim.now if until is None else until
        cut = end - window_s
        out: list[Completion] = []
        for c in reversed(self._sim.log):
            if c.finish <= cut:
                break
            if c.finish <= end:
                out.append(c)
        return out

    def energy_j(self) -> float:
        """Joules consumed so far by all replicas (accounted to now)."""
        total = 0.0
        for r in self._sim.replicas:
            r.advance(self._sim.now)
            total += r.energy_j
        return total


class Policy(Protocol):
    name: str
    interval_s: float

    def initial(self, view: ClusterView) -> int: ...

    def tick(self, view: ClusterView) -> int: ...


@dataclass
class Sample:
    t: float
    replicas: int
    ready: int
    in_flight: int
    queued: int


@dataclass
class SimResult:
    policy: str
    requests: list[Request]
    replicas: list[Replica]
    samples: list[Sample]
    end_s: float
    perf: PerformanceModel
    decisions: list[tuple[float, int, str]] = field(default_factory=list)
    cold_starts: int = 0  # scale-ups from zero replicas


# Replicas the simulator runs at most: a policy asking for more gets this many.
MAX_REPLICAS = 1000


class Simulation:
    def __init__(self, trace: Sequence[TraceRequest], perf: PerformanceModel, policy: Policy,
                 *, sample_every_s: float = 10.0, max_replicas_cap: int = MAX_REPLICAS,
                 activate_from_zero: bool = True, scrape_every_s: float = SCRAPE_EVERY_S
                 ) -> None:
        self.trace = trace
        self.perf = perf
        self.policy = policy
        self.now = 0.0
        self.desired = 0
        self.replicas: list[Replica] = []
        self.pending: deque[Request] = deque()
        self.log: list[Completion] = []
        self.samples: list[Sample] = []
        self.decisions: list[tuple[float, int, str]] = []
        self._heap: list[tuple[float, int, int, int]] = []  # (t, seq, rid, version)
        self._seq = 0
        self._sample_every = sample_every_s
        self._scrape_every = scrape_every_s
        self.scraped: tuple[float, float] = (0.0, 0.0)
        self.scraped_at = 0.0
        self._cap = max_replicas_cap
        self._rr = 0
        self._open = 0
        # Scale to zero: a request arriving while no replica exists asks for one at once
        # (what an activator does) and waits at the router through the cold start.
        self._activate = activate_from_zero
        self.cold_starts = 0
        self.last_arrival: float | None = None
        self.woken_at: float | None = None  # the latest wake-up from zero by a request

    # -- scaling -----------------------------------------------------------------------
    def _scale_to(self, n: int, *, warm: bool = False) -> None:
        n = max(0, min(n, self._cap))
        self.desired = n
        active = [r for r in self.replicas if not r.draining and r.stopped_at is None]
        if n > len(active):
            if not active and not warm:
                self.cold_starts += 1
            for _ in range(n - len(active)):
                ready_at = self.now if warm else self.now + self.perf.cold_start_s
                rep = Replica(len(self.replicas), self.perf, self.now, ready_at)
                self.replicas.append(rep)
                if not warm:
                    self._push(ready_at, rep)
            return
        surplus = len(active) - n
        # Remove replicas still starting first (newest first), then the least loaded.
        order = sorted(active, key=lambda r: (r.is_ready(self.now), r.outstanding,
                                              -r.requested_at))
        for rep in order[:surplus]:
            rep.draining = True
            if rep.outstanding == 0:
                rep.stop(self.now)

    def _push(self, t: float, rep: Replica) -> None:
        if math.isfinite(t):
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, rep.rid, rep.version))

    def _reschedule(self, rep: Replica) -> None:
        self._push(rep.next_event(), rep)

    # -- routing -------------------------------------------------------------------------
    def _route(self, req: Request) -> None:
        best: Replica | None = None
        best_load = 0
        n = len(self.replicas)
        for k in range(n):  # least outstanding, ties broken round-robin
            rep = self.replicas[(self._rr + k) % n]
            if rep.draining or rep.stopped_at is not None or self.now < rep.ready_at:
                continue
            load = rep.outstanding
            if best is None or load < best_load:
                best, best_load = rep, load
                if load == 0:
                    break
        if best is None:
            self.pending.append(req)
            if self._activate and self.desired == 0:
                self.woken_at = self.now
                self._scale_to(1)  # one wake-up however many requests wait
            return
        self._rr = (best.rid + 1) % max(n, 1)
        best.admit(req, self.now)
        self._reschedule(best)

    def _finish(self, done: list[Request]) -> None:
        self._open -= len(done)
        for req in done:
            self.log.append(Completion(req.finish, req.finish - req.arrival,
                                       req.first_token - req.arrival, req.prompt, req.gen,
                                       req.held_s))

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> SimResult:
        reqs = [Request(i, r.arrival_s, r.prompt_tokens, r.gen_tokens)
                for i, r in enumerate(self.trace)]
        view = ClusterView(self)
        self._scale_to(max(0, self.policy.initial(view)), warm=True)
        self.decisions.append((0.0, self.desired, "initial"))
        next_tick = self.policy.interval_s
        next_sample = 0.0
        next_scrape = SCRAPE_PHASE * self._scrape_every
        i = 0
        horizon = (reqs[-1].arrival if reqs else 0.0)
        while True:
            t_arr = reqs[i].arrival if i < len(reqs) else math.inf
            t_ev = self._heap[0][0] if self._heap else math.inf
            if i >= len(reqs) and self._open == 0:
                break
            t_tick = next_tick if self.now <= horizon + 3600 else math.inf
            t = min(t_arr, t_ev, t_tick, next_sample)
            if not math.isfinite(t):
                break  # nothing can progress (no replicas and no policy ticks left)
            if next_scrape <= t:  # a scrape only reads: no event of its own
                self.now = next_scrape
                self.scraped = (float(view.in_flight()), float(view.queued()))
                self.scraped_at = next_scrape
                next_scrape += self._scrape_every
                continue
            self.now = t
            if t == next_sample:
                self._sample()
                next_sample += self._sample_every
            elif t == t_ev:
                _, _, rid, version = heapq.heappop(self._heap)
                rep = self.replicas[rid]
                if version != rep.version or rep.stopped_at is not None:
                    continue
                if rep.ready_at == t and not rep.outstanding:
                    rep.version += 1
                    self._flush_pending()
                    continue
                self._finish(rep.step(t))
                if rep.draining and rep.outstanding == 0:
                    rep.stop(t)
                else:
                    self._reschedule(rep)
            elif t == t_arr:
                self._open += 1
                self.last_arrival = t
                self._route(reqs[i])
                i += 1
            else:
                self._scale_to(self.policy.tick(view))
                self.decisions.append((t, self.desired, self.policy.name))
                self._flush_pending()
                next_tick += self.policy.interval_s
        end = self.now
        for rep in self.replicas:
            if rep.stopped_at is None:
                rep.stop(end)
        return SimResult(self.policy.name, reqs, self.replicas, self.samples, end, self.perf,
                         self.decisions, self.cold_starts)

    def _flush_pending(self) -> None:
        if not self.pending:
            return
        waiting, self.pending = self.pending, deque()
        while waiting:
            req = waiting.popleft()
            req.held_s = self.now - req.arrival
            self._route(req)

    def _sample(self) -> None:
        active = [r for r in self.replicas if not r.draining and r.stopped_at is None]
        self.samples.append(Sample(
            self.now, len(active), sum(1 for r in active if r.is_ready(self.now)),
            sum(r.in_service for r in self.replicas if r.stopped_at is None),
            sum(len(r.queue) for r in self.replicas) + len(self.pending)))
