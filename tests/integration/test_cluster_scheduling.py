"""The simulated pools behave like real nodes: the real scheduler places pods, kwok runs them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubeutil import Cluster, pod_condition, pods_ready, wait_for
from wattserve.devcluster.components import KUBERNETES_VERSION

pytestmark = pytest.mark.integration

POOL_LABEL = "wattserve.dev/pool"


def _tolerations(pool: str, gpu: bool) -> list[dict[str, Any]]:
    tols: list[dict[str, Any]] = [
        {"key": POOL_LABEL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}
    ]
    if gpu:
        tols.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    return tols


def deployment(
    name: str,
    *,
    replicas: int = 1,
    selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    gpus: int = 0,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    pod_spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "example.invalid/llm:dev", "resources": resources}]
    }
    if selector:
        pod_spec["nodeSelector"] = selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def _node_labels(cluster: Cluster, node: str) -> dict[str, str]:
    return dict(cluster.get_json("node", node)["metadata"]["labels"])


def _pending_reason(cluster: Cluster, namespace: str, app: str) -> str | None:
    """The scheduler's PodScheduled=False message for the app's pod, once it is there."""
    pods = cluster.get_json("pods", "-n", namespace, "-l", f"app={app}")["items"]
    if not pods:
        return None
    pod = pods[0]
    cond = pod_condition(pod, "PodScheduled")
    if pod.get("spec", {}).get("nodeName") or not cond or cond.get("status") != "False":
        return None
    return str(cond.get("reason", "")) + ": " + str(cond.get("message", ""))


@pytest.fixture
def pools(kube_cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """Nodes by pool; skips on a cluster without the simulated pools (e.g. plain kind)."""
    by_pool: dict[str, list[dict[str, Any]]] = {}
    for node in kube_cluster.get_json("nodes")["items"]:
        pool = node["metadata"].get("labels", {}).get(POOL_LABEL)
        if pool:
            by_pool.setdefault(pool, []).append(node)
    if not by_pool and kube_cluster.external:
        pytest.skip("external cluster has no wattserve.dev/pool nodes")
    return by_pool


def test_server_reports_a_real_version(kube_cluster: Cluster) -> None:
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    git_version = version["serverVersion"]["gitVersion"]
    assert git_version.startswith("v1."), git_version
    assert int(version["serverVersion"]["minor"].rstrip("+")) >= 30
    if not kube_cluster.external:
        assert git_version == KUBERNETES_VERSION


def test_simulated_pools_exist_with_conventions(
    pools: dict[str, list[dict[str, Any]]],
) -> None:
    # The simulated (kwok) pools; the real node's cpu-local pool is checked in test_real_node.
    by_pool = {
        pool: kwok
        for pool, members in pools.items()
        if (kwok := [n for n in members if n["metadata"]["labels"].get("type") == "kwok"])
    }
    assert {p: len(n) for p, n in by_pool.items()} == {"cpu-general": 3, "gpu-l4": 2, "gpu-h100": 2}
    for pool, members in by_pool.items():
        for node in members:
            taints = {(t["key"], t.get("value"), t["effect"]) for t in node["spec"]["taints"]}
            assert (POOL_LABEL, pool, "NoSchedule") in taints
            alloc = node["status"]["allocatable"]
            labels = node["metadata"]["labels"]
            assert labels["type"] == "kwok"
            assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
            ready = pod_condition({"status": node["status"]}, "Ready")
            assert ready is not None and ready["status"] == "True"
            if pool.startswith("gpu-"):
                assert ("nvidia.com/gpu", "present", "NoSchedule") in taints
                expected = {
                    "gpu-l4": ("NVIDIA-L4", "4"),
                    "gpu-h100": ("NVIDIA-H100-80GB-HBM3", "8"),
                }
                assert (labels["nvidia.com/gpu.product"], alloc["nvidia.com/gpu"]) == expected[pool]
            else:
                assert alloc["cpu"] == "16" and alloc["memory"] == "64Gi"
                assert "nvidia.com/gpu" not in alloc


def test_cpu_pool_deployment_becomes_ready(
    kube_cluster: Cluster, namespace: str, pools: object
) -> None:
    dep = deployment(
        "cpu-app",
        replicas=2,
        selector={POOL_LABEL: "cpu-general"},
        tolerations=_tolerations("cpu-general", gpu=False),
    )
    kube_cluster.apply(dep, "-n", namespace)
    pods = wait_for(
        lambda: pods_ready(kube_cluster, namespace, "app=cpu-app", 2),
        timeout=60,
        what="2 cpu-app pods Ready",
    )
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert _node_labels(kube_cluster, pod["spec"]["nodeName"])[POOL_LABEL] == "cpu-general"
    wait_for(
        lambda: (
            kube_cluster.get_json("deployment", "cpu-app", "-n", namespace)["status"].get(
                "readyReplicas"
            )
            == 2
        ),
        timeout=30,
        what="Deployment cpu-app readyReplicas=2",
    )


def test_gpu_request_lands_on_a_gpu_node(
    kube_cluster: Cluster, namespace: str, pools: object
) -> None:
    dep = deployment(
        "l4-app",
        selector={POOL_LABEL: "gpu-l4"},
        tolerations=_tolerations("gpu-l4", gpu=True),
        gpus=2,
    )
    kube_cluster.apply(dep, "-n", namespace)
    pods = wait_for(
        lambda: pods_ready(kube_cluster, namespace, "app=l4-app", 1),
        timeout=60,
        what="l4-app pod Ready",
    )
    labels = _node_labels(kube_cluster, pods[0]["spec"]["nodeName"])
    assert labels[POOL_LABEL] == "gpu-l4"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"


def test_too_many_gpus_stays_pending_with_scheduler_reason(
    kube_cluster: Cluster, namespace: str, pools: object
) -> None:
    dep = deployment(
        "greedy",
        selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        tolerations=_tolerations("gpu-h100", gpu=True),
        gpus=9,
    )
    kube_cluster.apply(dep, "-n", namespace)
    reason = wait_for(
        lambda: _pending_reason(kube_cluster, namespace, "greedy"),
        timeout=60,
        what="PodScheduled=False on the 9-GPU pod",
    )
    assert reason.startswith("Unschedulable"), reason
    assert "Insufficient nvidia.com/gpu" in reason, reason
    events = wait_for(
        lambda: [
            e
            for e in kube_cluster.get_json("events", "-n", namespace)["items"]
            if e.get("reason") == "FailedScheduling"
        ],
        timeout=30,
        what="FailedScheduling event",
    )
    assert "nvidia.com/gpu" in events[0]["message"]


def test_missing_toleration_stays_pending(
    kube_cluster: Cluster, namespace: str, pools: object
) -> None:
    dep = deployment("intolerant", selector={POOL_LABEL: "cpu-general"})
    kube_cluster.apply(dep, "-n", namespace)
    reason = wait_for(
        lambda: _pending_reason(kube_cluster, namespace, "intolerant"),
        timeout=60,
        what="PodScheduled=False on the pod without tolerations",
    )
    assert "untolerated taint" in reason, reason
