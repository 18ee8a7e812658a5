"""The reconcile as a pure function: observed state -> children, status, events."""

from __future__ import annotations

import copy
from typing import Any

from wattserve.reconcile.decide import Observed, Outcome, decide
from wattserve.render import RenderSettings

from tests.unit.factories import example_pools
from tests.unit.test_render_support import example_md_doc

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"
POOLS = example_pools()


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def live(obj: dict[str, Any], **status: Any) -> dict[str, Any]:
    """What the API server returns for an applied child: defaults and status added."""
    out = copy.deepcopy(obj)
    out["metadata"].update(resourceVersion="1", generation=1, uid="child-uid")
    if out["kind"] == "Deployment":
        out["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
        out["status"] = {"observedGeneration": 1, **status}
    if out["kind"] == "Service":
        out["spec"]["clusterIP"] = "10.96.0.10"
    return out


def run(body: dict[str, Any], children: dict | None = None, pods: list | None = None,
        now: str = NOW, **kw: Any) -> Outcome:
    return decide(Observed(body=body, pools=POOLS, children=children or {}, pods=pods or [],
                           **kw), RenderSettings(), now)


def converge(body: dict[str, Any]) -> tuple[dict[str, Any], dict, Outcome]:
    """One runtime reconcile: decide, apply the children, decide again on the refreshed world
    (as the Reconciler does after writing) and patch status with that second outcome."""
    out = run(body)
    children = {(o["kind"], o["metadata"]["name"]): live(o) for o in out.apply}
    refreshed = run(body, children)
    return merge(body, {"status": dict(refreshed.status_patch or {})}), children, out


def cond(body: dict[str, Any], cond_type: str) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == cond_type)


def test_first_reconcile_creates_children_places_and_announces_it() -> None:
    out = run(example_md_doc("smollm2-135m.yaml"))
    assert out.result == "placed"
    assert [o["kind"] for o in out.apply] == ["Deployment", "Service"]
    assert out.delete == ()
    status = out.status_patch
    assert status["placement"]["pool"] == "cpu-general"
    assert status["replicas"]["desired"] == out.plan.chosen.replicas
    assert status["current"]["source"] == "predicted"
    assert status["observedGeneration"] == 1
    types = {c["type"]: c for c in status["conditions"]}
    assert types["Placed"]["status"] == "True"
    assert types["Ready"]["status"] == "False"
    assert types["Scaled"]["reason"] == "AwaitingMetrics"
    assert [(e.type, e.reason) for e in out.events] == [("Normal", "Placed")]


def test_second_reconcile_with_nothing_changed_writes_nothing() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    again = run(body, children, now=LATER)
    assert again.apply == () and again.delete == ()
    assert again.status_patch is None
    assert again.events == ()


def test_child_edited_by_hand_is_reapplied_alone() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    dep = children[("Deployment", "smollm2-135m")]
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    out = run(body, children)
    assert [o["kind"] for o in out.apply] == ["Deployment"]


def test_deleted_child_is_recreated() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    del children[("Service", "smollm2-135m")]
    assert [o["kind"] for o in run(body, children).apply] == ["Service"]


def test_autoscaler_replica_count_is_kept_not_reset_to_the_plan() -> None:
    body, children, first = converge(example_md_doc("smollm2-135m.yaml"))
    body["status"]["replicas"]["desired"] = 6  # written by the autoscaler
    out = run(body, children)
    (dep,) = out.apply
    assert dep["spec"]["replicas"] == 6
    assert out.status_patch is None or "desired" not in out.status_patch.get("replicas", {})
    assert first.plan.chosen.replicas != 6


def test_replica_count_is_clamped_to_the_spec_bounds() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    body["status"]["replicas"]["desired"] = 50
    (dep,) = run(body, children).apply
    assert dep["spec"]["replicas"] == 8  # maxReplicas


def test_pinning_to_another_pool_re_places_and_re_seeds_replicas() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    body["status"]["replicas"]["desired"] = 6
    body["spec"]["placement"] = {"pool": "gpu-l4"}
    body["metadata"]["generation"] = 2
    out = run(body, children)
    dep = next(o for o in out.apply if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"wattserve.dev/pool": "gpu-l4"}
    assert dep["spec"]["replicas"] == out.plan.chosen.replicas
    assert [(e.reason, e.type) for e in out.events] == [("Placed", "Normal")]
    assert out.status_patch["observedGeneration"] == 2


def test_infeasible_model_gets_placed_false_a_warning_and_no_children() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["budget"] = {"maxUSDPerHour": "0.0001"}
    out = run(doc)
    assert out.result == "infeasible" and out.apply == ()
    placed = next(c for c in out.status_patch["conditions"] if c["type"] == "Placed")
    assert (placed["status"], placed["reason"]) == ("False", "OverBudget")
    assert placed["message"] == out.plan.reason
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "OverBudget")]
    body = merge(doc, {"status": dict(out.status_patch)})
    again = run(body, now=LATER)
    assert again.events == () and again.status_patch is None  # once per reason


def test_pinned_pool_problems_have_their_own_reasons() -> None:
    doc = example_md_doc("llama-3.1-70b-bf16.yaml")
    doc["spec"]["placement"] = {"pool": "cpu-general"}
    out = run(doc)
    placed = next(c for c in out.status_patch["conditions"] if c["type"] == "Placed")
    assert placed["reason"] == "PinnedPoolInfeasible"
    doc["spec"]["placement"] = {"pool": "nope"}
    placed = next(c for c in run(doc).status_patch["conditions"] if c["type"] == "Placed")
    assert placed["reason"] == "PinnedPoolNotFound"


def test_no_pool_fits_is_no_feasible_pool() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["slo"] = {"latencyP95Ms": 1}
    placed = next(c for c in run(doc).status_patch["conditions"] if c["type"] == "Placed")
    assert placed["reason"] == "NoFeasiblePool"


def test_model_turning_infeasible_keeps_its_children_and_says_degraded() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    body["spec"]["budget"] = {"maxUSDPerHour": "0.0001"}
    out = run(body, children)
    assert out.apply == () and out.delete == ()
    body = merge(body, {"status": dict(out.status_patch)})
    assert cond(body, "Degraded")["reason"] == "PlacementLost"
    assert cond(body, "Placed")["reason"] == "OverBudget"
    assert out.placed_pool == "cpu-general"  # still runs there (for the re-plan index)


def test_spec_error_past_the_schema_is_invalid_spec_naming_the_field() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["model"]["source"] = "pvc://Not_A_Claim/x"
    out = run(doc)
    assert out.result == "invalid" and out.apply == ()
    placed = next(c for c in out.status_patch["conditions"] if c["type"] == "Placed")
    assert placed["reason"] == "InvalidSpec"
    assert "spec.model.source" in placed["message"]


def test_unschedulable_pods_make_degraded_with_the_scheduler_message() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    msg = "0/7 nodes are available: 7 Insufficient cpu."
    pod = {"metadata": {"name": "p1"}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": msg}]}}
    out = run(body, children, pods=[pod])
    body2 = merge(body, {"status": dict(out.status_patch)})
    degraded = cond(body2, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "Unschedulable"
    assert msg in degraded["message"]
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "Unschedulable")]
    assert run(body2, children, pods=[pod]).events == ()


def test_image_pull_errors_are_reported() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    pod = {"metadata": {"name": "p1"}, "status": {"containerStatuses": [
        {"name": "serving", "state": {"waiting": {"reason": "ImagePullBackOff",
                                                  "message": "not found"}}}]}}
    out = run(body, children, pods=[pod])
    degraded = next(c for c in out.status_patch["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ImagePullError"


def test_ready_when_the_deployment_has_all_replicas_available() -> None:
    body, children, out = converge(example_md_doc("smollm2-135m.yaml"))
    n = out.status_patch["replicas"]["desired"]
    key = ("Deployment", "smollm2-135m")
    children[key]["status"] = {"observedGeneration": 1, "availableReplicas": n,
                               "updatedReplicas": n, "readyReplicas": n}
    out = run(body, children)
    body = merge(body, {"status": dict(out.status_patch)})
    assert cond(body, "Ready")["status"] == "True"
    assert body["status"]["replicas"] == {"desired": n, "ready": n}


def test_switching_backend_deletes_the_old_children() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    body["spec"]["backend"] = "rayservice"
    out = run(body, children)
    assert [o["kind"] for o in out.apply] == ["RayService", "NetworkPolicy"]
    assert sorted(d[1] for d in out.delete) == ["Deployment", "Service"]


def test_switching_back_from_rayservice_prunes_its_network_policy() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["backend"] = "rayservice"
    body, children, _ = converge(doc)
    assert ("NetworkPolicy", "smollm2-135m") in children
    body["spec"]["backend"] = "deployment"
    out = run(body, children)
    assert sorted(d[:2] for d in out.delete) == [("networking.k8s.io/v1", "NetworkPolicy"),
                                                 ("ray.io/v1", "RayService")]


def test_switching_to_a_backend_whose_crd_is_missing_keeps_the_old_workload() -> None:
    """Make before break: without KubeRay the RayService cannot be created, so the running
    Deployment and Service stay (deleting them turned a configuration mistake into an
    outage) and Degraded says why."""
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    body["spec"]["backend"] = "rayservice"
    out = run(body, children, missing_kinds=frozenset({"RayService"}))
    assert out.delete == () and out.apply == ()
    degraded = next(c for c in out.status_patch["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RayServiceCRDMissing")


def test_missing_rayservice_crd_is_degraded_not_a_crash() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["backend"] = "rayservice"
    out = run(doc, missing_kinds=frozenset({"RayService"}))
    assert out.apply == ()
    degraded = next(c for c in out.status_patch["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "RayServiceCRDMissing"


def test_child_controlled_by_an_older_owner_is_replaced() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    children[("Service", "smollm2-135m")]["metadata"]["ownerReferences"][0]["uid"] = "old"
    out = run(body, children)
    assert ("v1", "Service", "smollm2-135m") in out.delete
    assert [o["kind"] for o in out.apply] == ["Service"]


def test_scaled_condition_owned_by_the_autoscaler_is_not_overwritten() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    scaled = cond(body, "Scaled")
    scaled.update(status="True", reason="ScaledUp")
    out = run(body, children)
    assert out.status_patch is None


def test_apply_failure_is_reported_as_degraded() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    out = run(body, children, apply_error="applying children failed: HTTP 500: boom")
    degraded = next(c for c in out.status_patch["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyFailed"


def test_scaled_describes_the_current_generation_even_when_not_placed() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["slo"] = {"latencyP95Ms": 1}  # infeasible from the start
    doc["metadata"]["generation"] = 1
    out = run(doc, autoscaler_disabled=True)
    scaled = next(c for c in out.status_patch["conditions"] if c["type"] == "Scaled")
    assert (scaled["status"], scaled["reason"]) == ("False", "AutoscalerDisabled")
    # With the autoscaler on, its last decision stands, seen at the new generation.
    body = merge(doc, {"status": {"conditions": [
        {"type": "Scaled", "status": "True", "reason": "PredictedLoad", "message": "2 -> 3",
         "observedGeneration": 1, "lastTransitionTime": NOW}]}})
    body["metadata"]["generation"] = 2
    out = run(body, now=LATER)
    scaled = next(c for c in out.status_patch["conditions"] if c["type"] == "Scaled")
    assert (scaled["reason"], scaled["observedGeneration"], scaled["lastTransitionTime"]) == (
        "PredictedLoad", 2, NOW)


def test_a_lost_placement_keeps_showing_where_the_kept_workload_runs() -> None:
    body, children, _ = converge(example_md_doc("smollm2-135m.yaml"))
    pool = body["status"]["placement"]["pool"]
    body["spec"]["slo"] = {"latencyP95Ms": 1}  # infeasible now: the workload is kept
    out = run(body, children, now=LATER)
    assert out.delete == ()
    placement = merge(body, {"status": dict(out.status_patch)})["status"]["placement"]
    assert placement["pool"] == pool and placement["engine"] == "llamacpp"
    assert "candidates" in placement
