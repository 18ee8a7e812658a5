"""A workload changing pool (fleet placement, docs/placement.md §7): when it was placed
where it runs, and a Deployment that moves rolling over make-before-break. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from wattserve import contract
from wattserve.api.status import ObjectMeta, mapping


def with_fleet_fields(summary: dict[str, Any], old: Mapping[str, Any] | None, pool: str,
                      spilled_from: str | None, now: str) -> dict[str, Any]:
    """``placedAt``: when the workload last changed pool (the re-balancing dwell counts
    from it); ``spilledFrom``: the better pool that was full."""
    old = old or {}
    same = old.get("pool") == pool and isinstance(old.get("placedAt"), str)
    summary["placedAt"] = old["placedAt"] if same else now
    if spilled_from is not None:
        summary["spilledFrom"] = spilled_from
    return summary


def make_before_break(obj: Mapping[str, Any], live: Mapping[str, Any] | None,
                       pool: str) -> Mapping[str, Any]:
    """A Deployment moving to another pool rolls over with surge and no unavailability:
    the new pool's pods start and turn Ready (and join the Service, which selects the
    model-deployment label only) before an old pod is stopped. The fleet plan counted the
    new pool's room, so the surge does not wait for GPUs that are not there. The override
    stays until the rollout is complete."""
    if obj.get("kind") != "Deployment" or live is None:
        return obj
    template = mapping(mapping(live.get("spec")).get("template"))
    live_pool = ObjectMeta.from_body(template).labels.get(contract.LABEL_K8S_POOL)
    live_strategy = (live.get("spec") or {}).get("strategy")
    if live_pool == pool and (live_strategy != _MOVE_STRATEGY or _rolled_out(live)):
        return obj
    return {**obj, "spec": {**obj["spec"], "strategy": _MOVE_STRATEGY}}


_MOVE_STRATEGY: Final = {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}


def _rolled_out(live: Mapping[str, Any]) -> bool:
    spec, status = live.get("spec") or {}, live.get("status") or {}
    want = int(spec.get("replicas") or 0)
    return (int(status.get("observedGeneration") or 0) >= ObjectMeta.from_body(live).generation
            and int(status.get("updatedReplicas") or 0) >= want
            and int(status.get("replicas") or 0) <= want)
