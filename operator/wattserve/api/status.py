"""A ModelDeployment's metadata and ``status`` as typed values, parsed once at the edge.

Like kopf's ``from_storage``/``for_storage``: :meth:`ModelDeploymentStatus.from_body` reads
what the API returned (tolerating any shape: a field of the wrong type reads as absent), the
reconcile works on the typed value, and :meth:`ModelDeploymentStatus.to_patch` turns the new
status back into the one merge patch to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wattserve.api.conditions import ConditionType
from wattserve.api.patching import merge_patch

EMPTY: Mapping[str, Any] = {}


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else EMPTY


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


@dataclass(frozen=True)
class ObjectMeta:
    name: str = ""
    namespace: str = ""
    generation: int = 0
    resource_version: str | None = None
    deletion_timestamp: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)
    owner_references: tuple[Mapping[str, Any], ...] = ()
    uid: str = ""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObjectMeta:
        meta = mapping(body.get("metadata"))
        rv, deleted = meta.get("resourceVersion"), meta.get("deletionTimestamp")
        return cls(name=str(meta.get("name") or ""),
                   namespace=str(meta.get("namespace") or ""),
                   generation=_int(meta.get("generation")) or 0,
                   resource_version=None if rv is None else str(rv),
                   deletion_timestamp=None if deleted is None else str(deleted),
                   annotations=mapping(meta.get("annotations")),
                   labels=mapping(meta.get("labels")),
                   owner_references=tuple(r for r in meta.get("ownerReferences") or ()
                                          if isinstance(r, Mapping)),
                   uid=str(meta.get("uid") or ""))


@dataclass(frozen=True)
class ModelDeploymentStatus:
    """``status`` of a ModelDeployment; ``raw`` is kept for the merge patch."""

    raw: Mapping[str, Any] = field(default_factory=dict)
    generation: int = 0  # metadata.generation: what the conditions are computed for
    conditions: tuple[Mapping[str, Any], ...] = ()
    desired_replicas: int | None = None  # status.replicas.desired, when an integer
    ready_replicas: int | None = None  # status.replicas.ready, when an integer
    placement: Mapping[str, Any] | None = None
    current: Mapping[str, Any] = field(default_factory=dict)
    idle: Mapping[str, Any] = field(default_factory=dict)
    scaler: Mapping[str, Any] | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ModelDeploymentStatus:
        status = mapping(body.get("status"))
        replicas = mapping(status.get("replicas"))
        placement, scaler = status.get("placement"), status.get("scaler")
        return cls(
            raw=status,
            generation=ObjectMeta.from_body(body).generation,
            conditions=tuple(c for c in status.get("conditions") or ()
                             if isinstance(c, Mapping)),
            desired_replicas=_int(replicas.get("desired")),
            ready_replicas=_int(replicas.get("ready")),
            placement=placement if isinstance(placement, Mapping) else None,
            current=mapping(status.get("current")),
            idle=mapping(status.get("idle")),
            scaler=scaler if isinstance(scaler, Mapping) else None,
        )

    @property
    def replicas(self) -> Mapping[str, Any]:
        return mapping(self.raw.get("replicas"))

    def condition(self, cond_type: str) -> Mapping[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == cond_type), None)

    def placed_pool(self) -> str | None:
        """The pool of ``status.placement`` when ``Placed=True``, else None."""
        placed = self.condition(ConditionType.PLACED)
        pool = (self.placement or EMPTY).get("pool")
        if placed is None or placed.get("status") != "True" or not pool:
            return None
        return str(pool)

    def to_patch(self, new: Mapping[str, Any]) -> dict[str, Any] | None:
        """The merge patch from this status to ``new`` (top-level keys absent from ``new``
        are left alone: another writer may own them); None when nothing changes."""
        return merge_patch(self.raw, new) or None
