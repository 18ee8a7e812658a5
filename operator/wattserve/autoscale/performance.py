"""The replica performance the simulator needs, as a Protocol over the placement
engine's ``wattserve.planning.performance.ReplicaPerformance`` (so tests can use the
hand-made :class:`SimplePerformance`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wattserve.planning.constants import GPU_DECODE_POWER_FRACTION


class PerformanceModel(Protocol):
    @property
    def decode_tps_single(self) -> float: ...
    @property
    def aggregate_tps_max(self) -> float: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def prefill_tps(self) -> float: ...
    @property
    def cold_start_s(self) -> float: ...
    @property
    def idle_watts(self) -> float: ...
    @property
    def max_watts(self) -> float: ...
    @property
    def usd_per_hour(self) -> float: ...
    @property
    def grams_co2_per_kwh(self) -> float: ...

    def per_stream_tps(self, concurrency: int) -> float: ...

    def power_watts(self, utilization: float) -> float: ...


@dataclass(frozen=True)
class SimplePerformance:
    """A hand-made replica: per-stream ``s1 / (1 + (n - 1) s1 / A)``, linear power."""

    decode_tps_single: float
    aggregate_tps_max: float
    max_concurrency: int
    prefill_tps: float
    cold_start_s: float
    idle_watts: float
    max_watts: float
    usd_per_hour: float
    grams_co2_per_kwh: float = 400.0

    def per_stream_tps(self, concurrency: int) -> float:
        n = max(1, concurrency)
        s1 = self.decode_tps_single
        return s1 / (1.0 + (n - 1) * s1 / max(self.aggregate_tps_max, s1))

    def power_watts(self, utilization: float) -> float:
        u = min(max(utilization, 0.0), 1.0)
        return self.idle_watts + (self.max_watts - self.idle_watts) * u


def utilization(perf: PerformanceModel, decoding: int, prefilling: bool) -> float:
    """Power-model utilization of one replica (the placement engine's convention):
    0 idle; 1 while prefilling (compute-bound) or busy on a one-sequence CPU replica;
    for batched GPU decode ``f + (1 - f) x compute utilization`` where ``f`` is the share
    of the dynamic range memory-bound decode already draws (falls back to decode
    throughput over the ceiling for models without ``compute_utilization``)."""
    if prefilling:
        return 1.0
    if decoding <= 0:
        return 0.0
    if perf.max_concurrency <= 1:
        return 1.0
    compute = getattr(perf, "compute_utilization", None)
    if callable(compute):
        cu = float(compute(decoding))
        return GPU_DECODE_POWER_FRACTION + (1.0 - GPU_DECODE_POWER_FRACTION) * cu
    agg = decoding * perf.per_stream_tps(decoding)
    return min(1.0, agg / max(perf.aggregate_tps_max, 1e-9))
