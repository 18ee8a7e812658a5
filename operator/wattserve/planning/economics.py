"""Replicas for the expected load, and what they cost in dollars, joules and CO2."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wattserve.planning import constants as c
from wattserve.planning.performance import (
    OperatingPoint,
    ReplicaPerformance,
    latency_at,
    operating_point,
)

J_PER_KWH = 3.6e6
MIN_PLANNING_RPS = 0.001  # per-token figures at zero expected load are taken at this rate


@dataclass(frozen=True)
class Targets:
    """What a replica must achieve at its operating point."""

    latency_p95_s: float
    ttft_p95_s: float | None
    max_utilization: float  # targetUtilizationPercent / 100

    def met_by(self, point: OperatingPoint) -> bool:
        return self._met(point.utilization, point.p95_latency_s, point.p95_ttft_s)

    def met_at(self, perf: ReplicaPerformance, rate: float, prompt: int, output: int) -> bool:
        """Same as ``met_by(operating_point(...))`` without computing power."""
        return self._met(*latency_at(perf, rate, prompt, output))

    def _met(self, utilization: float, p95: float, ttft: float) -> bool:
        if not utilization < 1.0 or utilization > self.max_utilization:
            return False
        if p95 > self.latency_p95_s:
            return False
        return self.ttft_p95_s is None or ttft <= self.ttft_p95_s


# Memo of capacity_rps by the only figures latency depends on: pools that differ in price,
# power or grid carbon but not in hardware (regions) share the result. Bounded.
_CAPACITY: dict[tuple[object, ...], float] = {}
_CAPACITY_MAX = 65536


def capacity_rps(perf: ReplicaPerformance, prompt: int, output: int, targets: Targets) -> float:
    """The highest per-replica arrival rate that still meets the targets (0 if none)."""
    key = (perf.weight_bytes, perf.active_fraction, perf.kv_bytes_per_sequence,
           perf.flops_per_token, perf.bandwidth_bytes_s, perf.compute_flops_s, perf.prefill_tps,
           perf.max_concurrency, perf.step_overhead_s, prompt, output, targets.latency_p95_s,
           targets.ttft_p95_s, targets.max_utilization)
    found = _CAPACITY.get(key)
    if found is None:
        if len(_CAPACITY) >= _CAPACITY_MAX:
            _CAPACITY.clear()
        found = _CAPACITY[key] = _capacity_rps(perf, prompt, output, targets)
    return found


def _capacity_rps(perf: ReplicaPerformance, prompt: int, output: int,
                  targets: Targets) -> float:
    if perf.max_concurrency <= 1:
        return _serial_capacity(perf, prompt, output, targets)
    # Utilisation alone caps the rate at ρ = target (closed form); the SLO may cap it lower.
    # Latency only grows with the rate: if the cap meets the SLO, so does every lower rate.
    a = prompt / perf.prefill_tps
    target = targets.max_utilization * 0.999999
    agg = perf.aggregate_tps_max
    high = target * agg / (output + target * agg * a) if output > 0 else target / a
    if targets.met_at(perf, high, prompt, output):
        return high
    tiny = 1e-6
    if not targets.met_at(perf, tiny, prompt, output):
        return 0.0
    low = tiny
    for _ in range(40):
        mid = (low + high) / 2
        if targets.met_at(perf, mid, prompt, output):
            low = mid
        else:
            high = mid
        if high - low <= 5e-3 * high:  # capacity to 0.5 %: finer than any input
            break
    return low


def _serial_capacity(perf: ReplicaPerformance, prompt: int, output: int,
                     targets: Targets) -> float:
    """Closed form for one-at-a-time replicas (see performance._serial_point):
    p95 = k·S + q·S·ρ/(1−ρ)·(1+scv)/2 ≤ L  ⇔  ρ ≤ x/(1+x), x = (L − k·S) / (q·S·(1+scv)/2)."""
    prefill = prompt / perf.prefill_tps
    service = prefill + output * perf.step_seconds(1)
    wait_unit = c.QUEUE_WAIT_P95_OVER_MEAN * service * (1.0 + c.SERVICE_SCV) / 2.0
    limits = [targets.max_utilization * 0.999999]
    for bound, fixed in ((targets.latency_p95_s, service), (targets.ttft_p95_s, prefill)):
        if bound is None:
            continue
        x = (bound - c.SERVICE_P95_OVER_MEAN * fixed) / wait_unit
        if x <= 0:
            return 0.0  # even an unloaded replica misses this bound
        limits.append(x / (1.0 + x) * 0.999999)
    return max(0.0, min(limits)) / service


@dataclass(frozen=True)
class Economics:
    replicas: int
    point: OperatingPoint  # per replica
    tokens_per_second: float  # served by the whole deployment
    usd_per_hour: float
    usd_per_million_tokens: float
    watts: float
    joules_per_token: float
    grams_co2_per_million_tokens: float


def replicas_needed(perf: ReplicaPerformance, rate: float, prompt: int, output: int,
                    targets: Targets, capacity: float, floor: int, limit: int) -> int | None:
    """Fewest replicas (≥ floor) meeting the targets at ``rate``; None above ``limit``."""
    if capacity <= 0:
        return None
    start = max(floor, 1, math.ceil(rate / capacity - 1e-9))
    if perf.max_concurrency <= 1:  # the serial capacity is exact (closed form)
        return start if start <= limit else None
    for replicas in range(start, min(limit, start + 3) + 1):
        if targets.met_at(perf, rate / replicas, prompt, output):
            return replicas
    return None


def economics(perf: ReplicaPerformance, replicas: int, rate: float, prompt: int,
              output: int) -> Economics:
    rate = max(rate, MIN_PLANNING_RPS)
    point = operating_point(perf, rate / replicas, prompt, output)
    tokens = rate * (output if output > 0 else prompt)
    usd = replicas * perf.usd_per_hour
    watts = replicas * point.power_watts
    joules = watts / tokens
    return Economics(
        replicas=replicas,
        point=point,
        tokens_per_second=tokens,
        usd_per_hour=usd,
        usd_per_million_tokens=usd / (tokens * 3600) * 1e6,
        watts=watts,
        joules_per_token=joules,
        grams_co2_per_million_tokens=joules * 1e6 / J_PER_KWH * perf.grams_co2_per_kwh,
    )
