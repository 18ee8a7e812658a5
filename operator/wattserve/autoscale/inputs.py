"""The spec -> :class:`ScalingInputs` adapter: a ModelDeployment and its placement's
replica performance become the policy's static inputs (used by the operator's autoscaler
and by the simulator)."""

from __future__ import annotations

from wattserve.api.types import ModelDeployment
from wattserve.autoscale.model import Goal, ScalingInputs
from wattserve.autoscale.performance import PerformanceModel
from wattserve.autoscale.queueing import Capacity


def capacity_of(perf: PerformanceModel) -> Capacity:
    """Sample the placement engine's per-stream curve for the policy's seeded model."""
    m = perf.max_concurrency
    points = sorted({1, m, *(2**k for k in range(1, 12) if 2**k < m)})
    return Capacity(m, perf.prefill_tps, tuple((n, perf.per_stream_tps(n)) for n in points))


def scaling_inputs(md: ModelDeployment, perf: PerformanceModel) -> ScalingInputs:
    s = md.spec
    return ScalingInputs(
        slo_p95_ms=float(s.slo.latency_p95_ms),
        slo_ttft_p95_ms=None if s.slo.ttft_p95_ms is None else float(s.slo.ttft_p95_ms),
        capacity=capacity_of(perf),
        min_replicas=s.scaling.min_replicas,
        max_replicas=s.scaling.max_replicas,
        target_utilization=s.scaling.target_utilization_percent / 100.0,
        scale_up_delay_s=float(s.scaling.scale_up_delay_seconds),
        scale_down_delay_s=float(s.scaling.scale_down_delay_seconds),
        goal=Goal(s.objective.value),
        max_joules_per_token=s.budget.max_joules_per_token,
        max_usd_per_hour=s.budget.max_usd_per_hour,
        usd_per_hour_per_replica=perf.usd_per_hour,
        idle_watts_per_replica=perf.idle_watts,
        max_watts_per_replica=perf.max_watts,
        cold_start_s=perf.cold_start_s,
        expected_prompt_tokens=float(s.expected_load.prompt_tokens),
        expected_gen_tokens=float(s.expected_load.output_tokens),
    )
