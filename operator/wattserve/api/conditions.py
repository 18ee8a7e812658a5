"""ModelDeployment (and ServingPool) condition types and the operator's reasons, in one place.

Like KubeRay's ``RayServiceConditionType`` / ``RayServiceConditionReason`` next to its types:
every ``status.conditions[].type``, every condition ``reason`` and every Event reason the
operator writes is a member here (``StrEnum``: it compares equal to, and serializes as, its
CamelCase string). The autoscaling policy's own reasons (the ``Scaled`` message's first word,
``SLOConflictsWith*``) are :class:`wattserve.autoscale.model.Reason`.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    PLACED = "Placed"
    DEGRADED = "Degraded"
    SCALED = "Scaled"
    # A ServingPool's one condition: its spec is valid and the placement engine uses it.
    ACCEPTED = "Accepted"


class Reason(StrEnum):
    # Placed=True, and a Normal Event when the pool or engine changes
    PLACED = "Placed"
    # Placed=False: the constraint that failed (a planning.Plan's ``code``, or the reconcile's)
    INVALID_SPEC = "InvalidSpec"
    PLANNING_FAILED = "PlanningFailed"
    POOLS_FULL = "PoolsFull"
    NO_SERVING_POOLS = "NoServingPools"
    PINNED_POOL_NOT_FOUND = "PinnedPoolNotFound"
    PINNED_POOL_INFEASIBLE = "PinnedPoolInfeasible"
    OVER_BUDGET = "OverBudget"
    NO_FEASIBLE_POOL = "NoFeasiblePool"
    # Ready
    AVAILABLE = "Available"
    REPLICAS_NOT_READY = "ReplicasNotReady"
    NOT_PLACED = "NotPlaced"
    SCALED_TO_ZERO = "ScaledToZero"
    # Degraded
    AS_EXPECTED = "AsExpected"
    NO_WORKLOAD = "NoWorkload"
    PLACEMENT_LOST = "PlacementLost"
    RAYSERVICE_CRD_MISSING = "RayServiceCRDMissing"
    APPLY_FAILED = "ApplyFailed"
    IMAGE_PULL_ERROR = "ImagePullError"
    UNSCHEDULABLE = "Unschedulable"
    CONTAINER_CONFIG_ERROR = "ContainerConfigError"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    RAYSERVICE_FAILED = "RayServiceFailed"
    # Scaled (and the Normal/Scaled, Normal/Activated Events)
    AWAITING_METRICS = "AwaitingMetrics"
    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    STEADY = "Steady"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    AUTOSCALER_DISABLED = "AutoscalerDisabled"
    SCALED = "Scaled"
    ACTIVATED = "Activated"
    # ServingPool Accepted=True (InvalidSpec, or UnsupportedAccelerator, when False)
    ACCEPTED = "Accepted"
    UNSUPPORTED_ACCELERATOR = "UnsupportedAccelerator"


# Placed=False reasons a plan can carry (planning.Plan.code when nothing was chosen).
PLAN_FAILURES = frozenset({Reason.NO_SERVING_POOLS, Reason.PINNED_POOL_NOT_FOUND,
                           Reason.PINNED_POOL_INFEASIBLE, Reason.OVER_BUDGET,
                           Reason.NO_FEASIBLE_POOL})
