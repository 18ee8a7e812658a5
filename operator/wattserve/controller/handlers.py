"""kopf handlers: thin adapters from kopf's watch streams to the Reconciler's caches.

* ``@kopf.on.event`` handlers only: they update the Reconciler's caches and queue the
  ModelDeployment (create = ADDED, update = MODIFIED, resume = the initial listing).
  No reconcile runs before the Reconciler's own initial LIST of pools, children and pods
  (``Reconciler.initial_sync``), so the first reconcile already sees every pool and child.
  (kopf indexes would give the same barrier, but kopf tracks one toggle per listed object
  and that scales quadratically: minutes of CPU for a few thousand objects at start-up.)
* No change-detecting handlers, timers or daemons: kopf adds no finalizer and writes no
  progress annotations; the periodic reconcile is the Reconciler's own resync timer.
"""

from __future__ import annotations

from typing import Any, Final

import kopf

from wattserve import contract
from wattserve.controller.reconciler import Reconciler

MANAGED: Final = {contract.LABEL_K8S_MANAGED_BY: "wattserve"}
CHILDREN: Final = (("apps", "v1", "deployments", "Deployment"),
                   ("", "v1", "services", "Service"),
                   ("ray.io", "v1", "rayservices", "RayService"),
                   ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
                   ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"))


def register(registry: kopf.OperatorRegistry, rec: Reconciler) -> None:
    group, version = contract.GROUP, contract.VERSION

    @kopf.on.event(group, version, "modeldeployments", registry=registry)
    async def model_deployment_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            rec.md_deleted(event["object"])
        else:
            rec.md_upsert(event["object"])

    @kopf.on.event(group, version, "servingpools", registry=registry)
    async def serving_pool_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            rec.pool_deleted(event["object"])
        else:
            rec.pool_upsert(event["object"])

    for api_group, api_version, plural, kind in CHILDREN:
        _register_child(registry, rec, api_group, api_version, plural, kind)

    @kopf.on.event("", "v1", "pods", labels=MANAGED, registry=registry)
    async def serving_pod_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            rec.pod_deleted(event["object"])
        else:
            rec.pod_upsert(event["object"])

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            rec.node_deleted(event["object"])
        else:
            rec.node_upsert(event["object"])

    @kopf.on.probe(id="reconciler", registry=registry)
    async def reconciler_probe(**_: Any) -> dict[str, Any]:
        return {"active": rec.active, "modelDeployments": len(rec.mds),
                "queued": len(rec.queue), "reconciles": rec.reconciles}


def _register_child(registry: kopf.OperatorRegistry, rec: Reconciler, api_group: str,
                    api_version: str, plural: str, kind: str) -> None:
    full_version = f"{api_group}/{api_version}" if api_group else api_version

    def typed(obj: Any) -> dict[str, Any]:
        return {**dict(obj), "apiVersion": full_version, "kind": kind}

    @kopf.on.event(api_group, api_version, plural, labels=MANAGED, registry=registry,
                   id=f"{kind.lower()}-event")
    async def child_event(event: kopf.RawEvent, **_: Any) -> None:
        if event["type"] == "DELETED":
            rec.child_deleted(typed(event["object"]))
        else:
            if kind == "RayService":
                rec.missing_kinds.discard(kind)
            rec.child_upsert(typed(event["object"]))
