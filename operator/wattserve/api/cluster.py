"""The Kubernetes objects the planner reads, typed once at the edge (pure): a Node's labels,
cordon, readiness and allocatable; a workload's per-container resource requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wattserve.api.status import mapping as as_mapping


@dataclass(frozen=True)
class Node:
    """What pool capacity needs of a Node (no heartbeats, no images, no addresses)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False  # cordoned
    not_ready: bool = False  # its Ready condition says "False"
    allocatable: Mapping[str, str] = field(default_factory=dict)  # else its capacity

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Node:
        meta, spec, status = (as_mapping(body.get(k)) for k in ("metadata", "spec", "status"))
        conditions = status.get("conditions")
        not_ready = any(as_mapping(c).get("type") == "Ready"
                        and as_mapping(c).get("status") == "False"
                        for c in (conditions if isinstance(conditions, list) else ()))
        alloc = as_mapping(status.get("allocatable")) or as_mapping(status.get("capacity"))
        return cls(name=str(meta.get("name") or ""),
                   labels={str(k): str(v) for k, v in as_mapping(meta.get("labels")).items()},
                   unschedulable=bool(spec.get("unschedulable")), not_ready=not_ready,
                   allocatable={str(k): str(v) for k, v in alloc.items()})


def container_requests(workload: Mapping[str, Any]) -> list[Mapping[str, str]]:
    """``resources.requests`` of each container of a workload's pod template."""
    template = as_mapping(as_mapping(as_mapping(workload.get("spec")).get("template"))
                          .get("spec"))
    containers = template.get("containers")
    out: list[Mapping[str, str]] = []
    for container in containers if isinstance(containers, list) else ():
        requests = as_mapping(as_mapping(as_mapping(container).get("resources"))
                              .get("requests"))
        out.append({str(k): str(v) for k, v in requests.items()})
    return out
