"""A ServingPool's status (pure): whether the placement engine uses the pool, and what the
fleet assignment books on it.

``kubectl get servingpools`` then shows, per pool, the ModelDeployments placed there, their
replicas and the share of the pool they commit ("12/48 vCPU committed", the figure the
``PoolsFull`` message quotes), and an invalid pool says why it is ignored instead of only
the operator's log saying so. What is booked is the fleet assignment's (replicas planned
or running, whichever the fleet counts), not a measurement of the nodes.

    status:
      observedGeneration: 3
      conditions: [{type: Accepted, status: "True", reason: Accepted, ...}]
      modelDeployments: 4
      replicas: 7
      capacity: {source: nodes, nodes: 3, cpu: "48", memoryGiB: "192", gpus: 0}
      committed: {cpu: "12", memoryGiB: "8", gpus: 0}
      usage: 12/48 vCPU committed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wattserve.api.conditions import ConditionType, Reason
from wattserve.planning.capacity import PoolCapacity, Resources, usage_text
from wattserve.planning.fleet import Assignment
from wattserve.planning.summary import decimal_string
from wattserve.reconcile.conditions import Condition, find, is_new_reason, merge_conditions
from wattserve.reconcile.decide import Event

# The fields this module writes (a merge patch sets the ones it leaves out to null).
FIELDS = ("observedGeneration", "conditions", "modelDeployments", "replicas", "capacity",
          "committed", "usage")


@dataclass(frozen=True)
class PoolSeen:
    """A ServingPool as the operator's cache holds it."""

    name: str
    generation: int
    status: Mapping[str, Any]  # as last read
    error: str | None = None  # why the spec is invalid (the pool is then ignored)
    uid: str = ""  # for the Events about it
    reason: Reason = Reason.INVALID_SPEC  # of Accepted=False when ``error`` is set


def booked(assignments: Iterable[Assignment], pool: str) -> tuple[int, int, Resources]:
    """ModelDeployments, replicas and resources the assignment books on ``pool``."""
    models = replicas = 0
    total = Resources()
    for got in assignments:
        if got.candidate is None or got.candidate.pool != pool:
            continue
        models += 1
        replicas += got.replicas
        total = total + got.request.times(got.replicas)
    return models, replicas, total


def _resources(res: Resources) -> dict[str, Any]:
    return {"cpu": decimal_string(res.cpu), "memoryGiB": decimal_string(res.memory_gib),
            "gpus": res.gpus}


def _conditions(seen: PoolSeen) -> list[Mapping[str, Any]]:
    old = seen.status.get("conditions")
    return [c for c in old if isinstance(c, Mapping)] if isinstance(old, list) else []


def pool_status(seen: PoolSeen, capacity: PoolCapacity | None,
                assignments: Iterable[Assignment], now: str) -> dict[str, Any]:
    """The status ``seen`` should have: every field of :data:`FIELDS` (None: absent)."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    out["observedGeneration"] = seen.generation
    existing = _conditions(seen)
    if seen.error is not None:
        cond = Condition(ConditionType.ACCEPTED, "False", seen.reason,
                         f"ignored by the placement engine: {seen.error}")
        out["conditions"] = merge_conditions(existing, [cond], seen.generation, now)
        return out
    models, replicas, used = booked(assignments, seen.name)
    if capacity is None:
        message = "used by the placement engine"
    elif capacity.source == "nodes":
        message = f"used by the placement engine; capacity from {len(capacity.nodes)} nodes"
    else:
        message = ("used by the placement engine; no node carries its labels yet, so its "
                   f"capacity is maxNodes ({len(capacity.nodes)}) x its node shape")
    cond = Condition(ConditionType.ACCEPTED, "True", Reason.ACCEPTED, message)
    out["conditions"] = merge_conditions(existing, [cond], seen.generation, now)
    out["modelDeployments"] = models
    out["replicas"] = replicas
    out["committed"] = _resources(used)
    if capacity is not None:
        total = capacity.total
        out["capacity"] = {"source": capacity.source, "nodes": len(capacity.nodes),
                           **_resources(total)}
        out["usage"] = usage_text(used, total, capacity.gpu)
    return out


def status_patch(seen: PoolSeen, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch from what ``seen`` holds to ``desired`` (None: nothing to write)."""
    patch = {key: value for key, value in desired.items()
             if seen.status.get(key) != value and not (value is None and key not in
                                                       seen.status)}
    return patch or None


def pool_events(seen: PoolSeen, patch: Mapping[str, Any]) -> tuple[Event, ...]:
    """The Events a written ``patch`` calls for: a Warning when it turns the pool's
    ``Accepted`` condition False or changes why (an invalid spec the API server let
    through, e.g. under an older CRD). Once per transition: a restart that finds the same
    condition writes nothing, so it posts nothing."""
    written = find(patch.get("conditions") or (), ConditionType.ACCEPTED)
    if written is None or written.get("status") != "False":
        return ()
    update = Condition(ConditionType.ACCEPTED, "False", str(written.get("reason")),
                       str(written.get("message")))
    if not is_new_reason(_conditions(seen), update):
        return ()
    return (Event("Warning", update.reason, update.message),)
