"""The operator against a real control plane: create, change, drift, delete, infeasible.

kwok simulates the kubelets: pods never run containers but are scheduled by the real
scheduler onto the simulated pool nodes and marked Ready by kwok.
"""

from __future__ import annotations

import time

import pytest
from kubeutil import Cluster, wait_for
from test_operator_support import (  # noqa: F401  (fixtures are used by name)
    Operator,
    condition,
    events_for,
    get_md,
    md_manifest,
    node_pool,
    operator_fixture,
    pods_of,
    wait_condition,
    wattserve_api_fixture,
)

pytestmark = pytest.mark.integration
NAME = "smollm2"


def _deployment(cluster: Cluster, ns: str) -> dict:
    return dict(cluster.get_json("deployment", NAME, "-n", ns))


def _pods_ready_on(cluster: Cluster, ns: str, pool: str, count: int) -> list | None:
    pods = [p for p in pods_of(cluster, ns, NAME)
            if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != count:
        return None
    for pod in pods:
        node = pod["spec"].get("nodeName")
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in pod.get("status", {}).get("conditions", []))
        if not node or not ready or node_pool(cluster, node) != pool:
            return None
    return pods


def test_create_places_children_on_the_pool_and_becomes_ready(
        operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    cluster.apply(md_manifest(NAME, namespace))
    md = wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)
    assert condition(md, "Placed")["status"] == "True"
    assert md["status"]["placement"]["pool"] == "cpu-general"
    desired = md["status"]["replicas"]["desired"]
    assert md["status"]["replicas"]["ready"] == desired
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    assert md["status"]["current"]["source"] == "predicted"
    assert _pods_ready_on(cluster, namespace, "cpu-general", desired)
    dep = _deployment(cluster, namespace)
    (ref,) = dep["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("ModelDeployment",
                                                            md["metadata"]["uid"], True)
    svc = cluster.get_json("service", NAME, "-n", namespace)
    assert svc["spec"]["ports"][0]["port"] == 8000
    placed = [e for e in events_for(cluster, namespace, NAME) if e["reason"] == "Placed"]
    assert len(placed) == 1 and placed[0]["type"] == "Normal"
    assert 'wattserve_operator_placements_total{engine="llamacpp",pool="cpu-general"} 1.0' \
        in operator.metrics()


def test_spec_change_re_places_the_children_on_the_new_pool(
        operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    cluster.apply(md_manifest(NAME, namespace))
    wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)
    cluster.apply(md_manifest(NAME, namespace, placement={"pool": "gpu-l4"}))
    md = wait_for(lambda: (m := get_md(cluster, namespace, NAME))["status"].get(
        "placement", {}).get("pool") == "gpu-l4" and m, timeout=60, what="re-placement")
    dep = _deployment(cluster, namespace)
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"wattserve.dev/pool": "gpu-l4"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert dep["spec"]["template"]["metadata"]["labels"]["wattserve.dev/engine"] == "vllm"
    desired = md["status"]["replicas"]["desired"]
    wait_for(lambda: _pods_ready_on(cluster, namespace, "gpu-l4", desired), timeout=120,
             what="pods on gpu-l4")
    wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=60)
    placed = [e for e in events_for(cluster, namespace, NAME) if e["reason"] == "Placed"]
    assert len(placed) == 2


def test_deleted_or_edited_children_are_restored(operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    cluster.apply(md_manifest(NAME, namespace))
    wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)
    uid = _deployment(cluster, namespace)["metadata"]["uid"]
    cluster.kubectl("delete", "service", NAME, "-n", namespace)
    cluster.kubectl("set", "image", f"deployment/{NAME}", "serving=evil:latest",
                    "-n", namespace)
    cluster.kubectl("patch", "deployment", NAME, "-n", namespace, "--type=json", "-p",
                    '[{"op": "remove", "path": "/spec/template/spec/tolerations"}]')
    wait_for(lambda: cluster.kubectl("get", "service", NAME, "-n", namespace,
                                     check=False).returncode == 0,
             timeout=30, what="Service re-created")

    def restored() -> bool:
        dep = _deployment(cluster, namespace)
        spec = dep["spec"]["template"]["spec"]
        return (spec["containers"][0]["image"].startswith("ghcr.io/wattserve/")
                and bool(spec.get("tolerations")))

    wait_for(restored, timeout=30, what="Deployment drift undone")
    assert _deployment(cluster, namespace)["metadata"]["uid"] == uid  # patched, not replaced
    cluster.kubectl("delete", "deployment", NAME, "-n", namespace)
    wait_for(lambda: _deployment(cluster, namespace)["metadata"]["uid"] != uid, timeout=30,
             what="Deployment re-created")
    wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)


def test_list_elements_others_add_to_a_child_are_kept_and_not_reapplied(
        operator: Operator, namespace: str) -> None:
    """An env var set by hand (or a sidecar a webhook injects) is another manager's element
    of an associative list: server-side apply keeps it, so it is not drift. Before, the
    Deployment was applied again on every resync (5 s here), forever."""
    cluster = operator.cluster
    cluster.apply(md_manifest(NAME, namespace))
    wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)
    cluster.kubectl("set", "env", f"deployment/{NAME}", "HAND_SET=1", "-n", namespace)
    time.sleep(2)  # the edit's watch event reconciled
    applies = 'wattserve_operator_api_requests_total', '{verb="apply"}'
    before = operator.metric(*applies)
    time.sleep(3 * 5 + 1)  # three resyncs
    assert operator.metric(*applies) == before, "the Deployment was applied again"
    env = _deployment(cluster, namespace)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HAND_SET", "value": "1"} in env
    cluster.kubectl("set", "image", f"deployment/{NAME}", "serving=evil:latest",
                    "-n", namespace)  # a field of ours still is drift
    wait_for(lambda: _deployment(cluster, namespace)["spec"]["template"]["spec"]
             ["containers"][0]["image"].startswith("ghcr.io/wattserve/"),
             timeout=30, what="our image restored")


def test_deleting_the_model_deployment_garbage_collects_its_children(
        operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    cluster.apply(md_manifest(NAME, namespace))
    wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)
    cluster.kubectl("delete", "modeldeployment", NAME, "-n", namespace, "--wait=true",
                    timeout=60)

    def gone() -> bool:
        deps = cluster.get_json("deployments", "-n", namespace)["items"]
        svcs = cluster.get_json("services", "-n", namespace)["items"]
        return not deps and not svcs

    wait_for(gone, timeout=60, what="children garbage-collected")


def test_infeasible_model_gets_a_condition_and_one_warning_and_no_children(
        operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    cluster.apply(md_manifest(NAME, namespace, budget={"maxUSDPerHour": "0.001"}))
    md = wait_condition(cluster, namespace, NAME, "Placed", "False", "OverBudget")
    assert "over budget" in condition(md, "Placed")["message"]
    assert condition(md, "Ready")["status"] == "False"
    wait_for(lambda: [e for e in events_for(cluster, namespace, NAME)
                      if e["reason"] == "OverBudget"], timeout=20, what="Warning event")
    time.sleep(7)  # more than one resync period (5 s): no new events, no children
    warnings = [e for e in events_for(cluster, namespace, NAME) if e["type"] == "Warning"]
    assert len(warnings) == 1 and warnings[0].get("count", 1) == 1
    assert cluster.get_json("deployments", "-n", namespace)["items"] == []
    cluster.apply(md_manifest(NAME, namespace, placement={"pool": "nope"}))
    md = wait_condition(cluster, namespace, NAME, "Placed", "False", "PinnedPoolNotFound")
    assert "nope" in condition(md, "Placed")["message"]


def test_a_dotted_name_is_placed_and_served_like_any_other(
        operator: Operator, namespace: str) -> None:
    from wattserve.render.meta import service_name

    cluster = operator.cluster
    name = "smollm2-1.7.v2"  # custom resources take DNS-1123 subdomains; Services do not
    cluster.apply(md_manifest(name, namespace))
    md = wait_condition(cluster, namespace, name, "Ready", "True", timeout=90)
    dep = cluster.get_json("deployment", name, "-n", namespace)
    assert dep["status"].get("readyReplicas") == md["status"]["replicas"]["desired"]
    svc = cluster.get_json("service", service_name(name), "-n", namespace)
    assert svc["metadata"]["name"] != name
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
