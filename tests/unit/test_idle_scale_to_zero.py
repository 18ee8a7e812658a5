"""minReplicas 0 in the operator (pure): the idle timeout scales to zero, an activation wakes
the model, the activator's EndpointSlice exists exactly while requests need it."""

from __future__ import annotations

from typing import Any

from wattserve import contract
from wattserve.autoscale import Observation, ScalerState
from wattserve.reconcile.zero import ActivatorEndpoints, iso

from tests.unit.test_controller_autoscaling import (
    NOW,
    applied,
    busy,
    idle,
    placed_body,
    run_tick,
    scaled,
)
from tests.unit.test_controller_decide import cond, converge, live, merge, run
from tests.unit.test_render_support import example_md_doc

ACTIVATOR = ActivatorEndpoints(("10.244.0.7", "10.244.1.9"), 8012)


# ---- the autoscaler's tick ------------------------------------------------------------

def test_an_idle_model_scales_to_zero_once_idle_for_the_timeout() -> None:
    body = placed_body(desired=1, minReplicas=0)
    first = run_tick(body, idle())
    timeout = first.status_patch["idle"]["timeoutSeconds"]
    assert first.desired_replicas is None  # idle since now - window: not yet
    assert first.status_patch["idle"]["since"] == iso(NOW - 60)
    body = applied(body, first.status_patch)
    later = run_tick(body, idle(), first.state, now=NOW - 60 + timeout + 1)
    assert later.desired_replicas == 0
    assert later.last_scale is not None and later.last_scale["to"] == 0
    c = scaled(later.status_patch)
    assert (c["status"], c["reason"]) == ("True", "ScaledToZero")
    assert f"the {timeout}s idle timeout" in c["message"]
    assert later.status_patch["idle"]["scaledToZeroAt"] == iso(NOW - 60 + timeout + 1)
    assert [e.reason for e in later.events] == ["Scaled"]
    assert "1 -> 0 replicas (ScaledToZero)" in later.events[0].message


def test_traffic_resets_the_idle_clock() -> None:
    body = placed_body(desired=1, minReplicas=0)
    first = run_tick(body, idle())
    body = applied(body, first.status_patch)
    busy_tick = run_tick(body, busy(rate=0.2, p95=0.5), first.state, now=NOW + 15)
    assert busy_tick.status_patch["idle"]["since"] is None
    assert busy_tick.status_patch["idle"]["activeRate"] > 0
    assert busy_tick.decision.desired_replicas >= 1  # the policy decides, not the idle clock


def test_a_model_at_zero_stays_there_whatever_the_policy_would_recommend() -> None:
    body = placed_body(desired=0, ready=0, minReplicas=0)
    body["status"]["idle"] = {"scaledToZeroAt": iso(NOW - 600)}
    out = run_tick(body, idle(), ScalerState(replicas=0))
    assert out.decision.desired_replicas == 0 and out.desired_replicas is None
    c = scaled(out.status_patch)
    assert c["reason"] == "ScaledToZero" and "0 replicas for 600s" in c["message"]
    # Metrics down at zero: still zero (only an activation wakes it).
    down = run_tick(body, None, ScalerState(replicas=0))
    assert down.decision.desired_replicas == 0 and down.desired_replicas is None


def test_a_model_that_never_served_a_request_is_idle_but_an_outage_is_not() -> None:
    # No request counter series yet (born with the first request), pods scraped: idle.
    never = Observation(request_rate=None, in_flight=0.0, queued=0.0)
    body = placed_body(desired=1, minReplicas=0, idleTimeoutSeconds=30)
    first = run_tick(body, never)
    assert first.status_patch["idle"]["since"] == iso(NOW - 60)
    assert first.desired_replicas == 0  # idle for a window >= the 30 s override
    # Prometheus unreachable: nothing known, the idle clock stops and nothing scales.
    down = run_tick(body, None)
    assert down.status_patch["idle"]["since"] is None and down.desired_replicas is None


def test_min_replicas_one_never_scales_to_zero() -> None:
    body = placed_body(desired=1, minReplicas=1)
    out = run_tick(body, idle(), now=NOW + 10 * 86400)
    assert out.decision.desired_replicas == 1 and "idle" not in out.status_patch


def test_the_spec_override_replaces_the_computed_timeout() -> None:
    body = placed_body(desired=1, minReplicas=0, idleTimeoutSeconds=45)
    out = run_tick(body, idle())
    status = out.status_patch["idle"]
    assert status["timeoutSeconds"] == 45 and status["reason"] == "Override"
    assert "spec.scaling.idleTimeoutSeconds" in status["message"]
    later = run_tick(applied(body, out.status_patch), idle(), out.state, now=NOW - 60 + 46)
    assert later.desired_replicas == 0


def test_a_learned_cold_start_lengthens_the_timeout() -> None:
    seeded = placed_body(desired=1, minReplicas=0)
    slow = placed_body(desired=1, minReplicas=0)
    slow["status"]["idle"] = {"coldStartSeconds": 900.0, "coldStartLearned": True}
    t_seeded = run_tick(seeded, idle()).status_patch["idle"]["timeoutSeconds"]
    t_slow = run_tick(slow, idle()).status_patch["idle"]["timeoutSeconds"]
    assert t_slow > t_seeded


# ---- the reconcile ----------------------------------------------------------------------

def zero_body(**annotations: str) -> dict[str, Any]:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["scaling"]["minReplicas"] = 0
    doc["metadata"]["annotations"] = dict(annotations)
    body, _, _ = converge(doc)
    body = merge(body, {"status": {"replicas": {"desired": 0},
                                   "idle": {"scaledToZeroAt": "2026-01-01T00:00:00Z"}}})
    return body


def children_of(body: dict[str, Any], **dep_status: Any) -> dict[tuple[str, str], Any]:
    out = run(body)
    children = {}
    for obj in out.apply:
        children[(obj["kind"], obj["metadata"]["name"])] = live(obj, **dep_status)
    return children


def test_at_zero_the_deployment_has_no_replicas_and_the_service_reaches_the_activator() -> None:
    body = zero_body()
    out = run(body, activator=ACTIVATOR)
    kinds = {o["kind"]: o for o in out.apply}
    assert kinds["Deployment"]["spec"]["replicas"] == 0
    eps = kinds["EndpointSlice"]
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == kinds["Service"][
        "metadata"]["name"]
    assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] != (
        "endpointslice-controller.k8s.io")
    assert [e["addresses"] for e in eps["endpoints"]] == [["10.244.0.7"], ["10.244.1.9"]]
    assert eps["ports"] == [{"name": "http", "port": 8012, "protocol": "TCP"}]
    assert eps["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    ready = next(c for c in out.status_patch["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "ScaledToZero")
    assert out.desired_replicas == 0


def test_at_zero_without_an_activator_ready_is_false_and_says_why() -> None:
    out = run(zero_body())
    assert "EndpointSlice" not in {o["kind"] for o in out.apply}
    ready = next(c for c in out.status_patch["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ScaledToZero")
    assert "no activator" in ready["message"]


def test_an_activation_newer_than_the_scale_to_zero_wakes_one_replica() -> None:
    body = zero_body(**{contract.ANNOTATION_ACTIVATION: "2026-01-01T00:00:05Z"})
    out = run(body, activator=ACTIVATOR, now="2026-01-01T00:00:06Z")
    dep = next(o for o in out.apply if o["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 1
    assert out.status_patch["replicas"]["desired"] == 1
    assert out.status_patch["lastScale"]["reason"] == "Activated"
    assert out.status_patch["idle"]["wakeRequestedAt"] == "2026-01-01T00:00:05Z"
    assert [e.reason for e in out.events] == ["Activated"]
    # Not Ready yet: the activator keeps receiving (and holding) requests.
    assert "EndpointSlice" in {o["kind"] for o in out.apply}


def test_an_activation_older_than_the_scale_to_zero_is_ignored() -> None:
    body = zero_body(**{contract.ANNOTATION_ACTIVATION: "2025-12-31T23:59:00Z"})
    out = run(body, activator=ACTIVATOR)
    assert next(o for o in out.apply if o["kind"] == "Deployment")["spec"]["replicas"] == 0
    assert not out.events


def test_once_the_woken_replica_is_ready_the_slice_goes_and_the_cold_start_is_learned() -> None:
    body = zero_body(**{contract.ANNOTATION_ACTIVATION: "2026-01-01T00:00:05Z"})
    woke = run(body, activator=ACTIVATOR, now="2026-01-01T00:00:06Z")
    body = merge(body, {"status": dict(woke.status_patch or {})})
    children = {(o["kind"], o["metadata"]["name"]): live(
        o, replicas=1, readyReplicas=1, availableReplicas=1, updatedReplicas=1)
        for o in woke.apply}
    ready = run(body, children, activator=ACTIVATOR, now="2026-01-01T00:00:17Z")
    assert ready.apply == ()
    assert [d[1] for d in ready.delete] == ["EndpointSlice"]
    idle_status = ready.status_patch["idle"]
    assert idle_status["lastColdStartSeconds"] == 12.0
    assert idle_status["coldStartSeconds"] == 12.0 and idle_status["wakeRequestedAt"] is None
    body = merge(body, {"status": dict(ready.status_patch)})
    assert cond(body, "Ready")["status"] == "True"


def test_before_the_activator_is_listed_an_existing_route_is_left_alone() -> None:
    body = zero_body()
    routed = run(body, activator=ACTIVATOR)
    children = {(o["kind"], o["metadata"]["name"]): live(o) for o in routed.apply}
    restarted = run(body, children, activator=None, activator_unknown=True)
    assert not restarted.delete  # an operator restart does not cut the route for 5 s
    assert not [o for o in restarted.apply if o["kind"] == "EndpointSlice"]
    gone = run(body, children, activator=None)
    assert [d[1] for d in gone.delete] == ["EndpointSlice"]
