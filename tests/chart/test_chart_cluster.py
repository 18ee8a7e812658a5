"""The chart on a real API server (integration): `helm install` into a namespace that
enforces the "restricted" Pod Security Standard, server-side validation of every object, and
the ServiceAccount's effective permissions (`kubectl auth can-i`)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, unique_name, wait_for

from .helmutil import CHART, REPO_ROOT, helm

pytestmark = pytest.mark.integration


def _helm(cluster: Cluster, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = cluster.env
    env.setdefault("HELM_CACHE_HOME", "/tmp/wattserve-chart-tests/helm-cache")
    env.setdefault("HELM_CONFIG_HOME", "/tmp/wattserve-chart-tests/helm-config")
    env.setdefault("HELM_DATA_HOME", "/tmp/wattserve-chart-tests/helm-data")
    return subprocess.run([str(cluster.helm or helm()), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def release(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Any]]:
    ns = unique_name("wsc")
    name = unique_name("ws")
    kube_cluster.kubectl("create", "namespace", ns)
    kube_cluster.kubectl("label", "namespace", ns,
                         "pod-security.kubernetes.io/enforce=restricted",
                         "pod-security.kubernetes.io/enforce-version=latest")
    # The example pools, renamed so that they cannot clash with other tests' pools.
    pools = [d for d in yaml.safe_load_all((REPO_ROOT / "examples" / "pools.yaml").read_text())
             if d]
    values = {
        "servingPools": [{"name": f"{ns}-{p['metadata']['name']}", "spec": p["spec"]}
                         for p in pools],
        "networkPolicy": {"enabled": True},
        "dashboard": {"enabled": True},
    }
    vfile = tmp_path_factory.mktemp("chart") / "values.yaml"
    vfile.write_text(yaml.safe_dump(values))
    res = _helm(kube_cluster, "install", name, str(CHART), "-n", ns, "-f", str(vfile),
                "--wait=false")
    assert res.returncode == 0, res.stderr
    info = {"ns": ns, "name": name, "sa": f"{name}-wattserve", "pools": values["servingPools"]}
    try:
        yield info
    finally:
        _helm(kube_cluster, "uninstall", name, "-n", ns, "--wait=false")
        kube_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_operator_pod_admitted_under_restricted(kube_cluster: Cluster,
                                                release: dict[str, Any]) -> None:
    ns = release["ns"]

    def pod_created() -> Any:
        pods = kube_cluster.get_json("pods", "-n", ns)["items"]
        if pods:
            return pods
        rs = kube_cluster.get_json("replicasets", "-n", ns)["items"]
        for r in rs:
            for c in r.get("status", {}).get("conditions", []) or []:
                if c["type"] == "ReplicaFailure":
                    pytest.fail(f"ReplicaSet could not create the pod: {c.get('message')}")
        return None

    pods = wait_for(pod_created, timeout=60, what="the operator pod to be created")
    assert len(pods) == 1


def test_pools_created(kube_cluster: Cluster, release: dict[str, Any]) -> None:
    for pool in release["pools"]:
        got = kube_cluster.get_json("servingpool", pool["name"])
        assert got["spec"]["pricing"] == pool["spec"]["pricing"]


RELEASE = "<release namespace>"
# (verb, group, resource[/subresource], namespace or "" for all/cluster-scoped)
CAN = [
    ("list", "wattserve.dev", "modeldeployments", ""),
    ("patch", "wattserve.dev", "modeldeployments", "team-a"),  # its memory annotations
    ("patch", "wattserve.dev", "modeldeployments/status", "team-a"),
    ("watch", "wattserve.dev", "servingpools", ""),
    ("patch", "wattserve.dev", "servingpools/status", ""),
    ("create", "apps", "deployments", "team-a"),
    ("delete", "", "services", "team-a"),
    ("create", "", "events", "team-a"),
    ("create", "ray.io", "rayservices", "team-a"),
    ("list", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("patch", "kopf.dev", "clusterkopfpeerings", ""),
    ("watch", "", "namespaces", ""),
    ("watch", "", "nodes", ""),
    ("update", "coordination.k8s.io", "leases", RELEASE),  # leader election
]
CANNOT = [
    ("get", "", "secrets", "team-a"),
    ("list", "", "secrets", ""),
    ("create", "", "pods/exec", "team-a"),
    ("create", "", "pods", "team-a"),
    ("delete", "wattserve.dev", "modeldeployments", "team-a"),
    ("create", "wattserve.dev", "servingpools", ""),
    ("patch", "wattserve.dev", "servingpools", ""),  # the admin's spec: status only
    ("create", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("update", "", "nodes", ""),
    ("impersonate", "", "serviceaccounts", ""),
    ("update", "coordination.k8s.io", "leases", "team-a"),  # only the release namespace's
    ("delete", "coordination.k8s.io", "leases", RELEASE),
]


@pytest.mark.parametrize(("verb", "group", "resource", "namespace"), CAN + CANNOT,
                         ids=[f"{v}-{r}.{g or 'core'}" for v, g, r, _ in CAN + CANNOT])
def test_service_account_permissions(kube_cluster: Cluster, release: dict[str, Any],
                                     verb: str, group: str, resource: str,
                                     namespace: str) -> None:
    """A SubjectAccessReview (works for resources whose CRDs are not installed, e.g. KubeRay)."""
    res, _, sub = resource.partition("/")
    attrs = {"verb": verb, "group": group, "resource": res}
    if sub:
        attrs["subresource"] = sub
    ns = release["ns"]
    if namespace:
        attrs["namespace"] = ns if namespace == RELEASE else namespace
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{ns}:{release['sa']}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                       "system:authenticated"],
            "resourceAttributes": attrs,
        },
    }
    out = kube_cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    allowed = json.loads(out.stdout)["status"].get("allowed", False)
    expected = (verb, group, resource, namespace) in CAN
    assert allowed is expected, f"{verb} {resource}.{group or 'core'} in {namespace or '*'}"
