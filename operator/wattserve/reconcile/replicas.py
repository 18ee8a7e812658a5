"""How many replicas to render (pure).

``status.replicas.desired`` is the source of truth once set: the reconcile writes the count
the autoscaler hands it (see :class:`wattserve.reconcile.decide.ScalingUpdate`) and every
reconcile renders with it, so the reconcile never fights the autoscaler. It is seeded from
the plan when the ModelDeployment is first placed and re-seeded when the placement changes
shape (pool, engine or replica size), since a replica count for one shape means nothing for
another. It is always clamped to
``[max(1, minReplicas), maxReplicas]``, except that with ``minReplicas: 0`` a count of 0 set by
the autoscaler (scale to zero after the idle timeout) is kept; a first placement or a new
shape always starts with at least one replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattserve.api.types import Scaling
from wattserve.planning.placement import Candidate


def clamp(replicas: int, scaling: Scaling, allow_zero: bool = False) -> int:
    if allow_zero and replicas <= 0 and scaling.min_replicas == 0:
        return 0
    low = max(1, scaling.min_replicas)
    return max(low, min(replicas, max(low, scaling.max_replicas)))


def shape_of(placement: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """The identity of a placement for replica purposes (None when not placed)."""
    if not placement or not placement.get("pool"):
        return None
    whole = max(1, int(placement.get("cpuRequest") or 0))  # statuses before cpuRequestMillis
    return (placement.get("pool"), placement.get("engine"), placement.get("tensorParallel"),
            placement.get("threads"), placement.get("cpuRequest"),
            placement.get("cpuRequestMillis") or whole * 1000, placement.get("memoryRequestGiB"))


def candidate_shape(cand: Candidate) -> tuple[Any, ...]:
    return (cand.pool, cand.engine, cand.tensor_parallel, cand.threads, cand.cpu_request,
            cand.cpu_millis, cand.memory_request_gib)


def desired_replicas(
    cand: Candidate,
    scaling: Scaling,
    status_desired: int | None,
    previous_placement: Mapping[str, Any] | None,
    child_replicas: int | None = None,
) -> int:
    """Replicas to render for ``cand``.

    * same shape as the previous placement and ``status.replicas.desired`` set: keep it;
    * no status yet but a child already exists (status lost, operator upgrade): adopt the
      child's replica count rather than resetting it;
    * otherwise (first placement, or a new shape): the plan's replicas.
    """
    previous = shape_of(previous_placement)
    same_shape = previous is not None and previous == candidate_shape(cand)
    if same_shape and status_desired is not None:
        return clamp(status_desired, scaling, allow_zero=True)
    if previous is None and status_desired is None and child_replicas is not None:
        return clamp(child_replicas, scaling)
    return clamp(cand.replicas, scaling)
