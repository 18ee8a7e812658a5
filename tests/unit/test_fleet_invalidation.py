"""The fleet is placed afresh only when what it booked changes: not for the EndpointSlices
of our Services (they carry our labels but no ModelDeployment owns them), not for the watch
event of a child created as assigned, but for a child in another pool or of another size."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from prometheus_client import REGISTRY
from wattserve.controller.reconciler import Reconciler

from tests.unit.test_controller_autoscaling_runtime import KEY, placed


def full_passes() -> float:
    return REGISTRY.get_sample_value("wattserve_operator_fleet_passes_total",
                                     {"kind": "full"}) or 0.0


def after(change: Any) -> float:
    """Full fleet passes the next reconcile's fleet choice makes after ``change``."""
    rec, api = asyncio.run(placed())
    rec.fleet_choice(KEY)  # the assignment as the reconcile left it
    before = full_passes()
    change(rec, api)
    rec.fleet_choice(KEY)
    return full_passes() - before


def applied(api: Any, kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in api.applied if o["kind"] == kind))


def test_an_endpointslice_of_our_service_does_not_replace_the_fleet() -> None:
    def endpointslice(rec: Reconciler, api: Any) -> None:
        svc = applied(api, "Service")
        rec.child_upsert({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": svc["metadata"]["name"] + "-x7k2p",
                         "namespace": svc["metadata"]["namespace"],
                         "labels": {**svc["metadata"]["labels"],
                                    "kubernetes.io/service-name": svc["metadata"]["name"]},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                              "name": svc["metadata"]["name"],
                                              "controller": True}]},
            "addressType": "IPv4", "endpoints": []})

    assert after(endpointslice) == 0


def test_the_watch_event_of_a_child_created_as_assigned_does_not_replace_the_fleet() -> None:
    def echo_before_answer(rec: Reconciler, api: Any) -> None:
        for kind in ("Deployment", "Service"):
            child = applied(api, kind)
            rec.children.remove(kind, child["metadata"]["namespace"], child["metadata"]["name"])
            rec.child_upsert(child | {"metadata": {**child["metadata"], "resourceVersion": "7"}})

    assert after(echo_before_answer) == 0


def test_a_new_child_in_another_pool_or_of_another_size_replaces_the_fleet() -> None:
    def moved(rec: Reconciler, api: Any) -> None:
        dep = applied(api, "Deployment")
        rec.children.remove("Deployment", dep["metadata"]["namespace"], dep["metadata"]["name"])
        dep["metadata"]["labels"]["wattserve.dev/pool"] = "gpu-h100"
        rec.child_upsert(dep)

    def resized(rec: Reconciler, api: Any) -> None:
        dep = applied(api, "Deployment")
        rec.children.remove("Deployment", dep["metadata"]["namespace"], dep["metadata"]["name"])
        dep["spec"]["replicas"] = dep["spec"]["replicas"] + 3
        rec.child_upsert(dep)

    assert after(moved) == 1
    assert after(resized) == 1
