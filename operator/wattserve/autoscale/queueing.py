"""Queueing model behind the predictive scaler (pure).

A replica has ``max_concurrency`` slots (1 for llama.cpp on CPU, hundreds for vLLM). A
sequence in a slot is prefilled (``prompt / prefill_tps``) and then decoded at
``per_stream_tps(n)`` tokens/s, where ``n`` is the number of sequences sharing the replica
(continuous batching: more streams, slower each, more in total). The deployment is
modelled as an M/G/c queue over all ``c = replicas x max_concurrency`` slots, with a
load-dependent service time:

1. Per-replica concurrency ``n`` solves Little's law ``n = (lambda/R) x S(n)`` where
   ``S(n) = prompt/prefill_tps + gen/per_stream_tps(n)`` (bisection on ``[0, m]``). No
   solution below ``m`` means the replicas cannot keep up: the prediction is infinite.
2. Tail service time: ``S95 = tail_factor x S(n_hi)`` with ``n_hi = n + 1.645 sqrt(n)``
   (Poisson fluctuation of the batch size, capped at ``m``) - a long request is slowed
   by the busiest batch it is likely to meet.
3. Waiting for a slot: Erlang C probability ``C(c, a)`` with ``a = lambda x S(m)``, and the
   Allen-Cunneen M/G/c approximation for the tail of the wait,
   ``P(W > t) ~= C exp(-2 (c - a) t / ((1 + cs2) S(m)))``, so
   ``w95 = S(m) (1 + cs2) ln(C / 0.05) / (2 (c - a))`` (0 when ``C <= 0.05``).
4. Batched replicas also queue for prefill, one prompt at a time (an M/G/1 stage per
   replica with utilization ``rho_p = (lambda/R) x prompt/prefill_tps``): Pollaczek-
   Khinchine mean wait ``rho_p/(1-rho_p) x prefill x (1 + cs2)/2``, times 3 for the p95.
5. ``p95 ~= S95 + w95`` (adding quantiles is conservative), times an online correction.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

Z95 = 1.645
PREFILL_WAIT_P95_OVER_MEAN = 3.0  # exponential tail: ln(20)


@dataclass(frozen=True)
class Capacity:
    """Per-replica performance, seeded from the placement engine's prediction.

    ``stream_tps`` is a table ``((concurrency, tokens/s per stream), ...)`` sampled from
    the placement model and interpolated linearly; beyond the last point the aggregate is
    flat (per-stream = aggregate / n).
    """

    max_concurrency: int
    prefill_tps: float
    stream_tps: tuple[tuple[int, float], ...]

    @staticmethod
    def from_rates(
        decode_tps_single: float, aggregate_tps_max: float, max_concurrency: int,
        prefill_tps: float,
    ) -> Capacity:
        """Fallback shape when no table is given: per-stream = s1 / (1 + (n-1) s1 / A)."""
        s1, agg = decode_tps_single, max(aggregate_tps_max, decode_tps_single)
        points: list[tuple[int, float]] = []
        n = 1
        while n <= max_concurrency:
            points.append((n, s1 / (1.0 + (n - 1) * s1 / agg)))
            n *= 2
        if points[-1][0] != max_concurrency:
            n = max_concurrency
            points.append((n, s1 / (1.0 + (n - 1) * s1 / agg)))
        return Capacity(max_concurrency, prefill_tps, tuple(points))

    def per_stream_tps(self, n: float) -> float:
        table = self.stream_tps
        n = max(1.0, n)
        if n <= table[0][0]:
            return table[0][1]
        for (n0, v0), (n1, v1) in itertools.pairwise(table):
            if n <= n1:
                return v0 + (v1 - v0) * (n - n0) / (n1 - n0)
        last_n, last_v = table[-1]
        return last_v * last_n / n


@dataclass(frozen=True)
class Load:
    """Arrival rate and mean token lengths of the traffic to plan for."""

    rate: float  # requests/s, whole deployment
    prompt_tokens: float  # mean per request
    gen_tokens: float  # mean per request


@dataclass(frozen=True)
class Prediction:
    p95_s: float  # math.inf when the replicas cannot keep up
    ttft_p95_s: float
    concurrency: float  # mean sequences per replica
    utilization: float  # 0..1: busy slots (m = 1) or decode throughput vs ceiling


def service_time(cap: Capacity, load: Load, n: float, speed: float) -> float:
    prefill = load.prompt_tokens / (cap.prefill_tps * speed)
    return prefill + load.gen_tokens / (cap.per_stream_tps(n) * speed)


def predict(
    cap: Capacity, load: Load, replicas: int, *, speed: float = 1.0,
    tail_factor: float = 2.0, scv: float = 1.0,
) -> Prediction:
    """Predicted p95 end-to-end latency and TTFT for ``replicas`` replicas."""
    if replicas <= 0:
        return Prediction(math.inf, math.inf, math.inf, 1.0)
    m = cap.max_concurrency
    lam_r = max(load.rate, 0.0) / replicas
    if lam_r <= 0:
        s1 = service_time(cap, load, 1, speed)
        return Prediction(tail_factor * s1, tail_factor * _prefill(cap, load, speed), 0.0, 0.0)
    if lam_r * service_time(cap, load, m, speed) >= m:
        return Prediction(math.inf, math.inf, float(m), 1.0)
    lo, hi = 0.0, float(m)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if lam_r * service_time(cap, load, mid, speed) > mid:
            lo = mid
        else:
            hi = mid
    n = hi
    n_hi = min(float(m), n + Z95 * math.sqrt(n)) if m > 1 else 1.0
    s95 = tail_factor * service_time(cap, load, n_hi, speed)
    s_full = service_time(cap, load, m, speed)
    c = replicas * m
    a = load.rate * s_full
    w95 = _wait_p95(c, a, s_full, scv)
    if m > 1:  # batched replicas prefill one prompt at a time: an M/G/1 stage of its own
        prefill = _prefill(cap, load, speed)
        rho_p = lam_r * prefill
        if rho_p >= 1.0:
            return Prediction(math.inf, math.inf, n, 1.0)
        w95 += PREFILL_WAIT_P95_OVER_MEAN * prefill * rho_p / (1.0 - rho_p) * (1.0 + scv) / 2.0
    util = n if m == 1 else lam_r * load.gen_tokens / (cap.per_stream_tps(m) * m * speed)
    ttft = tail_factor * _prefill(cap, load, speed) + w95
    return Prediction(s95 + w95, ttft, n, min(1.0, util))


def _prefill(cap: Capacity, load: Load, speed: float) -> float:
    return load.prompt_tokens / (cap.prefill_tps * speed)


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a`` (Erlang B recursion)."""
    if a <= 0:
        return 0.0
    if a >= c:
        return 1.0
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def _wait_p95(c: int, a: float, s: float, scv: float) -> float:
    if a <= 0:
        return 0.0
    if a >= c:
        return math.inf
    if c > 64 and a / c < 0.7:
        return 0.0  # many slots, far from full: waiting probability is negligible
    pw = erlang_c(c, a)
    if pw <= 0.05:
        return 0.0
    return s * (1.0 + scv) * math.log(pw / 0.05) / (2.0 * (c - a))
