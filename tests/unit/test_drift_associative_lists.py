"""Drift on lists follows server-side apply: elements other managers add to an associative
list (a sidecar a webhook injects, an env var) stay after our apply, so they are not drift;
our own elements are still checked, and atomic lists still must match whole.

Before: any extra element made the lengths differ, and the child was applied again on every
reconcile, forever (the apply could never remove what another manager owned)."""

from __future__ import annotations

import copy
from typing import Any

from wattserve.reconcile.drift import first_difference, matches


def _desired() -> dict[str, Any]:
    return {"kind": "Deployment", "spec": {"replicas": 1, "template": {"spec": {
        "containers": [{"name": "serve", "image": "serve:1",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "volumeMounts": [{"name": "model", "mountPath": "/models"}]}],
        "volumes": [{"name": "model", "emptyDir": {}}],
        "tolerations": [{"key": "wattserve.dev/pool", "operator": "Exists"}]}}}}


def _live_with_injected_parts() -> dict[str, Any]:
    live = copy.deepcopy(_desired())
    pod = live["spec"]["template"]["spec"]
    serve = pod["containers"][0]
    serve["ports"][0]["protocol"] = "TCP"  # defaulted by the API server
    serve["env"].insert(0, {"name": "INJECTED", "value": "x"})
    serve["volumeMounts"].append({"name": "istio-token", "mountPath": "/var/run/istio"})
    pod["containers"].insert(0, {"name": "istio-proxy", "image": "proxy:1"})
    pod["volumes"].append({"name": "istio-token", "emptyDir": {}})
    return live


def test_elements_other_managers_add_to_associative_lists_are_not_drift() -> None:
    assert matches(_desired(), _live_with_injected_parts())


def test_our_own_elements_are_still_checked_by_their_key() -> None:
    live = _live_with_injected_parts()
    serve = live["spec"]["template"]["spec"]["containers"][1]
    serve["env"][2]["value"] = "changed"  # B, ours
    assert first_difference(_desired(), live) == (
        "spec.template.spec.containers[0].env[1].value")
    live = _live_with_injected_parts()
    del live["spec"]["template"]["spec"]["containers"][1]  # our container went
    assert first_difference(_desired(), live) == "spec.template.spec.containers[0]"
    live = _live_with_injected_parts()
    live["spec"]["template"]["spec"]["containers"][1]["ports"][0]["protocol"] = "UDP"
    assert not matches(_desired(), live)


def test_atomic_lists_must_still_match_whole() -> None:
    live = _live_with_injected_parts()
    live["spec"]["template"]["spec"]["tolerations"].append({"key": "x", "operator": "Exists"})
    assert first_difference(_desired(), live) == "spec.template.spec.tolerations"


def test_an_empty_associative_list_of_ours_owns_nothing() -> None:
    desired = {"spec": {"containers": [{"name": "serve", "env": []}]}}
    live = {"spec": {"containers": [{"name": "serve", "env": [{"name": "X", "value": "1"}]}]}}
    assert matches(desired, live)


def test_service_ports_are_keyed_by_port_and_protocol() -> None:
    desired = {"kind": "Service", "spec": {"ports": [{"name": "http", "port": 8000}]}}
    live = {"kind": "Service", "spec": {"ports": [
        {"name": "metrics", "port": 9090, "protocol": "TCP"},
        {"name": "http", "port": 8000, "protocol": "TCP", "targetPort": 8000}]}}
    assert matches(desired, live)
    live["spec"]["ports"][1]["port"] = 8001
    assert not matches(desired, live)


def test_custom_resources_and_endpointslice_ports_stay_strict() -> None:
    """A RayService's lists are atomic (its CRD is not read), as are an EndpointSlice's ports:
    an element added there is drift our apply removes."""
    container = {"name": "ray-head", "image": "ray:1"}
    desired = {"apiVersion": "ray.io/v1", "kind": "RayService",
               "spec": {"containers": [container]}}
    live = copy.deepcopy(desired)
    live["spec"]["containers"].append({"name": "extra", "image": "x"})
    assert not matches(desired, live)
    assert matches({**desired, "apiVersion": "apps/v1", "kind": "Deployment"},
                   {**live, "apiVersion": "apps/v1", "kind": "Deployment"})
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}]}
    live_slice = copy.deepcopy(slice_)
    live_slice["ports"].append({"name": "x", "port": 1, "protocol": "TCP"})
    assert not matches(slice_, live_slice)
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "spec": {"ingress": [{"ports": [{"port": 8000, "protocol": "TCP"}]}]}}
    live_policy = copy.deepcopy(policy)
    live_policy["spec"]["ingress"][0]["ports"].append({"port": 22, "protocol": "TCP"})
    assert not matches(policy, live_policy)
