"""One simulated serving replica: bounded slots, FIFO prefill, processor-shared decode.

Decode is continuous batching: all ``n`` decoding sequences advance together at
``per_stream_tps(n)`` tokens/s. That is tracked with a virtual clock ``S`` (tokens per
stream since start): a sequence needing ``g`` tokens that joins at ``S0`` finishes when
``S`` reaches ``S0 + g``, so each event costs O(log n). Prefill is one FIFO server at
``prefill_tps`` (compute-bound, does not overlap with itself); a sequence holds its slot
from prefill to its last token. Requests beyond ``max_concurrency`` wait in the replica's
queue, as they do in llama.cpp's and vLLM's schedulers.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from wattserve.autoscale.performance import PerformanceModel, utilization

_EPS = 1e-9


class Request:
    __slots__ = ("arrival", "finish", "first_token", "gen", "held_s", "idx", "prompt", "start")

    def __init__(self, idx: int, arrival: float, prompt: int, gen: int) -> None:
        self.idx = idx
        self.arrival = arrival
        self.prompt = prompt
        self.gen = gen
        self.start = math.nan  # got a slot
        self.first_token = math.nan
        self.finish = math.nan
        self.held_s = 0.0  # time held at the router (no replica ready), e.g. a cold start


class Replica:
    def __init__(self, rid: int, perf: PerformanceModel, requested_at: float,
                 ready_at: float) -> None:
        self.rid = rid
        self.perf = perf
        self.requested_at = requested_at
        self.ready_at = ready_at
        self.draining = False
        self.stopped_at: float | None = None
        self.queue: deque[Request] = deque()
        self.prefill: deque[Request] = deque()
        self.prefill_done_at = math.inf
        self.decoding: list[tuple[float, int, Request]] = []
        self.vclock = 0.0
        self.last_t = requested_at
        self.energy_j = 0.0
        self.busy_s = 0.0
        self.version = 0
        self._max_conc = perf.max_concurrency
        self._prefill_tps = perf.prefill_tps
        self._rate_cache: dict[int, float] = {}

    # -- state ---------------------------------------------------------------------
    def is_ready(self, now: float) -> bool:
        return now >= self.ready_at and self.stopped_at is None

    @property
    def in_service(self) -> int:
        return len(self.prefill) + len(self.decoding)

    @property
    def outstanding(self) -> int:
        return self.in_service + len(self.queue)

    def _rate(self, n: int) -> float:
        r = self._rate_cache.get(n)
        if r is None:
            r = self.perf.per_stream_tps(n)
            self._rate_cache[n] = r
        return r

    def advance(self, now: float) -> None:
        """Account energy, busy time and decode progress up to ``now``."""
        dt = now - self.last_t
        if dt <= 0:
            return
        n = len(self.decoding)
        prefilling = bool(self.prefill)
        if self.stopped_at is None:
            self.energy_j += self.perf.power_watts(utilization(self.perf, n, prefilling)) * dt
        if n or prefilling:
            self.busy_s += dt
        if n:
            self.vclock += self._rate(n) * dt
        self.last_t = now

    # -- transitions -----------------------------------------------------------------
    def admit(self, req: Request, now: float) -> None:
        self.advance(now)
        if self.in_service < self._max_conc:
            self._start(req, now)
        else:
            self.queue.append(req)
        self.version += 1

    def _start(self, req: Request, now: float) -> None:
        req.start = now
        self.prefill.append(req)
        if len(self.prefill) == 1:
            self.prefill_done_at = now + req.prompt / self._prefill_tps

    def next_event(self) -> float:
        t = self.prefill_done_at
        if self.decoding:
            n = len(self.decoding)
            t_dec = self.last_t + max(0.0, self.decoding[0][0] - self.vclock) / self._rate(n)
            t = min(t, t_dec)
        return t

    def step(self, now: float) -> list[Request]:
        """Process what is due at ``now``; returns the finished requests."""
        self.advance(now)
        done: list[Request] = []
        if self.prefill and self.prefill_done_at <= now + _EPS:
            req = self.prefill.popleft()
            req.first_token = now
            heapq.heappush(self.decoding, (self.vclock + req.gen, req.idx, req))
            self.prefill_done_at = (now + self.prefill[0].prompt / self._prefill_tps
                                    if self.prefill else math.inf)
        tol = _EPS * max(1.0, self.vclock)
        while self.decoding and (self.decoding[0][0] <= self.vclock + tol
                                 or self._stalled(now)):
            _, _, req = heapq.heappop(self.decoding)
            req.finish = now
            done.append(req)
        while self.queue and self.in_service < self._max_conc:
            self._start(self.queue.popleft(), now)
        self.version += 1
        return done

    def _stalled(self, now: float) -> bool:
        """The first sequence's last token is due within the clock's resolution of ``now``
        and no prefill is due to change the decode rate: a replica so fast (a model of a
        few parameters) that ``now + dt == now`` would be stepped at ``now`` for ever, its
        decode clock never moving. It finishes now. Only such a state, which never ended
        before, decides here: every run that ended is unchanged."""
        if self.prefill_done_at <= now + _EPS:
            return False
        rest = max(0.0, self.decoding[0][0] - self.vclock)
        return self.last_t + rest / self._rate(len(self.decoding)) <= now

    def stop(self, now: float) -> None:
        self.advance(now)
        self.stopped_at = now
        self.version += 1
