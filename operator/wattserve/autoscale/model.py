"""Inputs, state and output of the autoscaling policy (pure data, serializable)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from wattserve.autoscale.queueing import Capacity


class Goal(StrEnum):
    """Mirrors ``ModelDeployment.spec.objective``."""

    COST = "cost"
    ENERGY = "energy"
    CARBON = "carbon"
    BALANCED = "balanced"


class Reason(StrEnum):
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    SLO_VIOLATION = "SLOViolation"
    PREDICTED_LOAD = "PredictedLoad"
    WITHIN_TOLERANCE = "WithinTolerance"
    STABILIZING = "StabilizingScaleDown"
    WAITING_FOR_COLD_START = "WaitingForColdStart"
    MAX_REPLICAS = "SLOConflictsWithMaxReplicas"
    USD_BUDGET = "SLOConflictsWithCostBudget"
    ENERGY_BUDGET = "SLOConflictsWithEnergyBudget"
    UNREACHABLE = "SLOUnreachableByScaling"
    SCALE_TO_ZERO = "ScaleToZeroNeedsActivation"
    RECURRING_BURSTS = "HoldingForRecurringBursts"


@dataclass(frozen=True)
class ScalingInputs:
    """Everything about the deployment the policy needs; built by an adapter from the
    ModelDeployment spec and the placement engine's ``ReplicaPerformance``."""

    slo_p95_ms: float
    capacity: Capacity  # per replica, seeded by the placement prediction
    min_replicas: int = 1
    max_replicas: int = 10
    target_utilization: float = 0.7  # 0..1, planned utilization for goal cost/balanced
    scale_up_delay_s: float = 0.0  # HPA-like stabilization window for scaling up
    scale_down_delay_s: float = 300.0  # ... and for scaling down
    goal: Goal = Goal.COST
    slo_ttft_p95_ms: float | None = None
    max_joules_per_token: float | None = None
    max_usd_per_hour: float | None = None
    usd_per_hour_per_replica: float = 0.0
    idle_watts_per_replica: float = 0.0
    max_watts_per_replica: float = 0.0
    cold_start_s: float = 60.0
    metrics_window_s: float = 60.0  # the PromQL rate()/histogram window
    # Seeded traffic shape, used until the metrics say otherwise.
    expected_prompt_tokens: float = 256.0
    expected_gen_tokens: float = 128.0
    # Tuning knobs (documented in docs/autoscaling.md).
    safety_margin: float = 0.1  # model error: plan for p95 <= (1 - margin) x SLO
    max_safety_margin: float = 0.4  # ... widened towards this after observed violations
    violation_alpha: float = 0.005  # memory of violations: ~200 ticks (50 min at 15 s)
    violation_gain: float = 40.0  # margin is at its widest when this x violations >= 1
    tolerance: float = 0.1  # hysteresis: scale down only below (1 - tol) x the up threshold
    tail_factor: float = 2.0  # p95 / mean service time for the trace's length mix
    ewma_alpha: float = 0.1
    forecast: bool = False  # extrapolate a rising rate over cold start + window lag
    rate_band: bool = True  # plan for the upper edge of the arrival-rate band (forecast.py)
    band_z: float = 1.645  # ... this many standard deviations (one-sided 95 %)
    asymptote_floor: bool = True  # margin above the p95 the most replicas give at the rate
    saturation_queue: float = 1.0  # queued per ready replica that means "saturated now"
    max_scale_up_step: int = 4  # per decision: max(2 x current, current + this)
    # Live facts (None: derive from the state).
    current_replicas: int | None = None
    ready_replicas: int | None = None

    def effective_max(self) -> int:
        cap = self.max_replicas
        if self.max_usd_per_hour is not None and self.usd_per_hour_per_replica > 0:
            cap = min(cap, math.floor(self.max_usd_per_hour / self.usd_per_hour_per_replica
                                          + 1e-9))
        return max(cap, 1)

    def effective_min(self) -> int:
        return max(1, self.min_replicas)

    def planned_utilization(self) -> float:
        if self.goal in (Goal.ENERGY, Goal.CARBON) or self.max_joules_per_token is not None:
            return max(self.target_utilization, 0.95)
        return self.target_utilization

    def watts(self, utilization: float) -> float:
        u = min(max(utilization, 0.0), 1.0)
        return self.idle_watts_per_replica + (
            self.max_watts_per_replica - self.idle_watts_per_replica) * u


@dataclass(frozen=True)
class ScalerState:
    """What the policy remembers between ticks; round-trips through a plain dict."""

    replicas: int
    recommendations: tuple[tuple[float, int], ...] = ()  # (time, recommended replicas)
    starts: tuple[tuple[float, int], ...] = ()  # (time, replicas added), recent scale-ups
    speed: float = 1.0  # measured / seeded service speed (ratio of the two EWMAs below)
    busy_ewma: float = 0.0  # EWMA of sequences in service (measured)
    gauge_ewma: float = 0.0  # EWMA of the in-flight gauge as read at ticks
    work_ewma: float = 0.0  # EWMA of rate x modelled service time (the model's in-service)
    tail_correction: float = 1.0  # observed / predicted p95 (EWMA)
    ttft_correction: float = 0.0  # observed - predicted p95 TTFT, seconds (EWMA)
    outage_since: float | None = None
    last_rate: float | None = None
    last_time: float | None = None
    trend: float = 0.0  # d(request rate)/dt, requests/s per s (EWMA)
    violations: float = 0.0  # EWMA of "observed p95 over the SLO" (0..1), slow
    volatility: float = 0.0  # EWMA of (rate change)^2 per second, (req/s)^2 / s
    unready: tuple[tuple[float, int], ...] = ()  # (time, replicas) requested, not yet ready
    last_ready: int | None = None
    startup_s: float | None = None  # start-up time learned from observed readiness
    observing_since: float | None = None  # first usable observation (windows fill up)
    steady_since: float | None = None  # the rate has held (no significant change) since
    prompt_tokens: float | None = None  # mean lengths learned on steady windows (EWMA)
    gen_tokens: float | None = None
    late_episodes: tuple[float, ...] = ()  # starts of recent misses capacity came too late for
    peak_replicas: int = 0  # most replicas a recent window needed ...
    peak_since: float | None = None  # ... set at this time
    scaled_down_at: float | None = None  # last decision that removed replicas
    last_backlog: float | None = None  # queued + in flight at the last tick
    backlog_at: float | None = None  # last tick with requests queued at every ready replica

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recommendations"] = [list(x) for x in self.recommendations]
        d["starts"] = [list(x) for x in self.starts]
        d["unready"] = [list(x) for x in self.unready]
        d["late_episodes"] = list(self.late_episodes)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ScalerState:
        return ScalerState(
            replicas=int(d["replicas"]),
            recommendations=tuple((float(t), int(r)) for t, r in d.get("recommendations", [])),
            starts=tuple((float(t), int(r)) for t, r in d.get("starts", [])),
            speed=float(d.get("speed", 1.0)),
            busy_ewma=float(d.get("busy_ewma", 0.0)),
            gauge_ewma=float(d.get("gauge_ewma", 0.0)),
            work_ewma=float(d.get("work_ewma", 0.0)),
            tail_correction=float(d.get("tail_correction", 1.0)),
            ttft_correction=float(d.get("ttft_correction", 0.0)),
            outage_since=None if d.get("outage_since") is None else float(d["outage_since"]),
            last_rate=None if d.get("last_rate") is None else float(d["last_rate"]),
            last_time=None if d.get("last_time") is None else float(d["last_time"]),
            trend=float(d.get("trend", 0.0)),
            violations=float(d.get("violations", 0.0)),
            volatility=float(d.get("volatility", 0.0)),
            unready=tuple((float(t), int(n)) for t, n in d.get("unready", [])),
            last_ready=None if d.get("last_ready") is None else int(d["last_ready"]),
            startup_s=None if d.get("startup_s") is None else float(d["startup_s"]),
            observing_since=(None if d.get("observing_since") is None
                             else float(d["observing_since"])),
            steady_since=(None if d.get("steady_since") is None
                          else float(d["steady_since"])),
            prompt_tokens=(None if d.get("prompt_tokens") is None
                           else float(d["prompt_tokens"])),
            gen_tokens=None if d.get("gen_tokens") is None else float(d["gen_tokens"]),
            late_episodes=tuple(float(t) for t in d.get("late_episodes", [])),
            peak_replicas=int(d.get("peak_replicas", 0)),
            peak_since=None if d.get("peak_since") is None else float(d["peak_since"]),
            scaled_down_at=(None if d.get("scaled_down_at") is None
                            else float(d["scaled_down_at"])),
            last_backlog=None if d.get("last_backlog") is None else float(d["last_backlog"]),
            backlog_at=None if d.get("backlog_at") is None else float(d["backlog_at"]),
        )

    def evolve(self, **changes: Any) -> ScalerState:
        return replace(self, **changes)


@dataclass(frozen=True)
class Decision:
    desired_replicas: int
    reason: str  # CamelCase, for the Scaled condition
    message: str  # one sentence with the numbers behind it
    conflict: bool = False  # SLO and a limit/budget cannot both hold
    predicted_p95_s: float | None = None
    metrics_available: bool = True
    outage_started: bool = False  # first tick of a metrics outage: emit one event
    extra: dict[str, float] = field(default_factory=dict)
