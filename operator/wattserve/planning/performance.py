"""Roofline performance of one replica, and its latency under a given arrival rate.

Decode of one step reads every weight once plus each sequence's KV cache, and does
2 × parameters FLOPs per sequence, so a step takes
``max(bytes / (efficiency × bandwidth), flops × batch / (efficiency × peak))``. Batching
(GPU) amortises the weight read until the step becomes compute-bound. Prefill is
compute-bound: ``2 × parameters`` FLOPs per prompt token.

A mixture of experts computes with its *active* parameters only (``flops_per_token``,
prefill), and one step reads the weights its batch is routed to: a share
``1 - (1 - f)^batch`` of them, ``f`` = active / total parameters (each token routed
independently). One sequence reads exactly its active weights; large batches read nearly
all. The share treats shared layers as experts, so between those ends it over-counts
the bytes read (the safe side): e.g. Qwen3-30B-A3B at batch 4, 11 GB-equivalent of
parameters counted against ~8 GB routed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from wattserve.planning import constants as c


@dataclass(frozen=True)
class ReplicaPerformance:
    """What one replica can do. The simulator and the autoscaler use it too."""

    engine: str
    weight_bytes: float  # read once per decode step
    kv_bytes_per_sequence: float  # KV read per sequence per step (typical length)
    flops_per_token: float  # 2 × parameters
    bandwidth_bytes_s: float  # effective (efficiency applied)
    compute_flops_s: float  # effective, decode
    prefill_tps: float  # prompt tokens per second (compute-bound)
    max_concurrency: int  # sequences decoded together (1 for llama.cpp)
    step_overhead_s: float
    cold_start_s: float
    idle_watts: float  # the replica's share of node idle power
    max_watts: float  # the replica's share of node power at full load
    usd_per_hour: float  # the replica's share of the node price
    grams_co2_per_kwh: float
    active_fraction: float = 1.0  # active / total parameters (< 1: a mixture of experts)

    def weights_read(self, batch: float) -> float:
        """Weight bytes one decode step reads with ``batch`` sequences (see the module)."""
        if self.active_fraction >= 1.0:
            return self.weight_bytes
        b = batch if batch > 1.0 else 1.0
        share: float = 1.0 - (1.0 - self.active_fraction) ** b
        return self.weight_bytes * share

    def step_seconds(self, batch: float) -> float:
        """Duration of one decode step with ``batch`` sequences (batch ≥ 1)."""
        b = batch if batch > 1.0 else 1.0
        memory = (self.weights_read(b) + b * self.kv_bytes_per_sequence) / self.bandwidth_bytes_s
        compute = b * self.flops_per_token / self.compute_flops_s
        return (memory if memory > compute else compute) + self.step_overhead_s

    @cached_property
    def decode_tps_single(self) -> float:
        """Tokens per second of one stream alone."""
        return 1.0 / self.step_seconds(1)

    def per_stream_tps(self, concurrency: float) -> float:
        """Tokens per second each stream gets when ``concurrency`` run together."""
        batch = min(max(1.0, concurrency), float(self.max_concurrency))
        share = batch / max(1.0, concurrency)  # beyond max_concurrency streams take turns
        return share / self.step_seconds(batch)

    @cached_property
    def aggregate_tps_max(self) -> float:
        """Decode tokens per second of the replica at its full batch."""
        return self.max_concurrency / self.step_seconds(self.max_concurrency)

    def compute_utilization(self, batch: float) -> float:
        """Share of a step spent on compute rather than waiting on memory."""
        b = max(1.0, batch)
        compute = b * self.flops_per_token / self.compute_flops_s
        return min(1.0, compute / self.step_seconds(b))

    def power_watts(self, utilization: float) -> float:
        """Replica power at a busy fraction in [0, 1]."""
        u = min(1.0, max(0.0, utilization))
        return self.idle_watts + (self.max_watts - self.idle_watts) * u


@dataclass(frozen=True)
class OperatingPoint:
    """A replica's predicted behaviour at one arrival rate."""

    arrival_rps: float
    utilization: float  # ρ: share of capacity in use (≥ 1 means overloaded)
    mean_batch: float
    mean_latency_s: float
    p95_latency_s: float
    p95_ttft_s: float
    busy_fraction: float
    power_watts: float

    @property
    def stable(self) -> bool:
        return self.utilization < 1.0


def operating_point(perf: ReplicaPerformance, arrival_rps: float, prompt_tokens: int,
                    output_tokens: int) -> OperatingPoint:
    """Predict latency at a per-replica Poisson arrival rate."""
    if perf.max_concurrency <= 1:
        return _serial_point(perf, arrival_rps, prompt_tokens, output_tokens)
    return _batched_point(perf, arrival_rps, prompt_tokens, output_tokens)


def _serial_point(perf: ReplicaPerformance, rate: float, prompt: int,
                  output: int) -> OperatingPoint:
    """One sequence at a time: an M/G/1 queue (Pollaczek–Khinchine mean wait)."""
    prefill = prompt / perf.prefill_tps
    service = prefill + output * perf.step_seconds(1)
    rho = rate * service
    wait = math.inf
    if rho < 1.0:
        wait = service * rho / (1.0 - rho) * (1.0 + c.SERVICE_SCV) / 2.0
    p95_wait = c.QUEUE_WAIT_P95_OVER_MEAN * wait
    power = perf.power_watts(min(1.0, rho))
    return OperatingPoint(
        arrival_rps=rate, utilization=rho, mean_batch=min(1.0, rho),
        mean_latency_s=service + wait,
        p95_latency_s=c.SERVICE_P95_OVER_MEAN * service + p95_wait,
        p95_ttft_s=c.SERVICE_P95_OVER_MEAN * prefill + p95_wait,
        busy_fraction=min(1.0, rho), power_watts=power,
    )


def _batch_for_rate(perf: ReplicaPerformance, rate: float, prompt: int, output: int,
                    beta: float) -> float:
    """Mean batch B solving B = λ·E2E(B), where step(B) is piecewise linear in B."""
    a = prompt / perf.prefill_tps
    slow = 1.0 - beta
    flat = rate * (a + output * perf.step_seconds(1) / slow)
    if flat <= 1.0:
        return flat  # fewer than one sequence on average: steps run at batch 1
    if perf.active_fraction < 1.0:
        return _batch_by_bisection(perf, rate, a, output, slow)
    mem_alpha = perf.weight_bytes / perf.bandwidth_bytes_s + perf.step_overhead_s
    mem_gamma = perf.kv_bytes_per_sequence / perf.bandwidth_bytes_s
    comp_gamma = perf.flops_per_token / perf.compute_flops_s
    best = math.inf
    for alpha, gamma in ((mem_alpha, mem_gamma), (perf.step_overhead_s, comp_gamma)):
        denominator = 1.0 - rate * output * gamma / slow
        if denominator <= 0:
            continue
        batch = rate * (a + output * alpha / slow) / denominator
        if abs(rate * (a + output * perf.step_seconds(batch) / slow) - batch) <= 1e-6 * batch:
            best = min(best, batch)
    return best


def _batch_by_bisection(perf: ReplicaPerformance, rate: float, a: float, output: int,
                        slow: float) -> float:
    """The same fixed point when the step is not piecewise linear in B (a mixture of
    experts reads more of its weights as the batch grows): the first B, doubling from 1,
    where Little's law is no longer short of B, then bisection. inf past max_concurrency."""
    def short(batch: float) -> float:  # > 0 while B sequences arrive faster than leave
        return rate * (a + output * perf.step_seconds(batch) / slow) - batch

    low, high = 1.0, 2.0
    while short(high) > 0:
        if high > perf.max_concurrency:
            return math.inf
        low, high = high, high * 2
    while high - low > 1e-9 * high:
        mid = (low + high) / 2
        if short(mid) > 0:
            low = mid
        else:
            high = mid
    return high


def _batched_core(perf: ReplicaPerformance, rate: float, prompt: int,
                  output: int) -> tuple[float, float, float, float, float]:
    """(ρ, mean batch, mean E2E, mean TTFT, prefill share); infinities when overloaded."""
    prefill_busy = rate * prompt / perf.prefill_tps  # share of time spent prefilling
    capacity = perf.aggregate_tps_max * (1.0 - min(prefill_busy, 1.0))
    rho = math.inf if capacity <= 0 else rate * output / capacity
    batch = math.inf
    if rho < 1.0 and prefill_busy < 1.0:
        batch = _batch_for_rate(perf, rate, prompt, output, prefill_busy)
    if batch > perf.max_concurrency:
        return max(rho, 1.0), float(perf.max_concurrency), math.inf, math.inf, prefill_busy
    slow = 1.0 - prefill_busy
    step = perf.step_seconds(batch)
    latency = prompt / perf.prefill_tps + output * step / slow
    if output == 0:  # a prefill-only request (embeddings) still costs one engine step
        latency += perf.step_overhead_s
    return rho, batch, latency, (prompt / perf.prefill_tps + step) / slow, prefill_busy


def latency_at(perf: ReplicaPerformance, rate: float, prompt: int,
               output: int) -> tuple[float, float, float]:
    """(utilisation, p95 latency, p95 TTFT) only: the cheap path for capacity searches."""
    if perf.max_concurrency <= 1:
        point = _serial_point(perf, rate, prompt, output)
        return point.utilization, point.p95_latency_s, point.p95_ttft_s
    rho, _, latency, ttft, _ = _batched_core(perf, rate, prompt, output)
    return rho, c.SERVICE_P95_OVER_MEAN * latency, c.SERVICE_P95_OVER_MEAN * ttft


def _batched_point(perf: ReplicaPerformance, rate: float, prompt: int,
                   output: int) -> OperatingPoint:
    """Continuous batching: the mean batch B solves Little's law B = λ × E2E(B)."""
    rho, batch, latency, ttft, prefill_busy = _batched_core(perf, rate, prompt, output)
    if math.isinf(latency):
        return OperatingPoint(rate, rho, batch, math.inf, math.inf, math.inf, 1.0,
                              perf.max_watts)
    busy = 1.0 - math.exp(-batch)  # P(at least one sequence in flight), M/G/∞
    intensity = c.GPU_DECODE_POWER_FRACTION + (1 - c.GPU_DECODE_POWER_FRACTION) * max(
        perf.compute_utilization(batch), prefill_busy)
    return OperatingPoint(
        arrival_rps=rate, utilization=rho, mean_batch=batch, mean_latency_s=latency,
        p95_latency_s=c.SERVICE_P95_OVER_MEAN * latency,
        p95_ttft_s=c.SERVICE_P95_OVER_MEAN * ttft,
        busy_fraction=busy, power_watts=perf.power_watts(busy * intensity),
    )
