"""With operator.namespaces set, RBAC is scoped: the workloads' verbs only in those
namespaces (a Role each), the ClusterRole only for cluster-scoped resources. Rendered with
`helm template`; the integration test asks the real API server (SubjectAccessReview)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, unique_name

from .helmutil import CHART, NAMESPACE, by_kind, helm, one, render
from .test_rbac import REQUIRED, _grants

WATCHED = ["team-a", "team-b"]
CLUSTER_SCOPED = {"servingpools", "servingpools/status", "clusterkopfpeerings",
                  "customresourcedefinitions",
                  "namespaces", "nodes"}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render({"operator": {"namespaces": WATCHED}})


def test_cluster_role_keeps_only_cluster_scoped_resources(docs: list[dict[str, Any]]) -> None:
    grants = _grants(one(docs, "ClusterRole")["rules"])
    assert {res for _, res in grants} == CLUSTER_SCOPED  # before: deployments, services...
    assert ("apps", "deployments") not in grants


def test_each_watched_namespace_gets_a_role_and_binding(docs: list[dict[str, Any]]) -> None:
    roles = {r["metadata"]["namespace"]: r for r in by_kind(docs, "Role")
             if not r["metadata"]["name"].endswith(("-leader-election", "-pool-events"))}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(docs, "RoleBinding")
                if not b["metadata"]["name"].endswith(("-leader-election", "-pool-events"))}
    assert sorted(roles) == sorted(bindings) == WATCHED
    cluster = _grants(one(docs, "ClusterRole")["rules"])
    for ns in WATCHED:
        granted = _grants(roles[ns]["rules"])
        assert not {res for _, res in granted} & CLUSTER_SCOPED
        assert granted[("apps", "deployments")] >= {"create", "patch", "delete"}
        assert bindings[ns]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                           "kind": "Role", "name": roles[ns]["metadata"]["name"]}
        assert bindings[ns]["subjects"][0]["namespace"] == NAMESPACE
        union = {k: cluster.get(k, set()) | granted.get(k, set())
                 for k in set(cluster) | set(granted)}
        for key, verbs in REQUIRED.items():  # together: exactly what the operator needs
            assert verbs <= union.get(key, set()), key


def test_pool_events_may_be_posted_in_the_default_namespace(docs: list[dict[str, Any]]) -> None:
    """Events about ServingPools (cluster-scoped) go to `default`, which WATCHED lacks."""
    (role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-pool-events")]
    (binding,) = [b for b in by_kind(docs, "RoleBinding")
                  if b["metadata"]["name"].endswith("-pool-events")]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "default"
    assert _grants(role["rules"]) == {("", "events"): REQUIRED[("", "events")]}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    listed = render({"operator": {"namespaces": ["default", "team-a"]}})
    assert not [r for r in by_kind(listed, "Role")
                if r["metadata"]["name"].endswith("-pool-events")]


def test_resource_names_of_a_rule_are_kept_when_rules_are_split() -> None:
    rules = yaml.safe_load((CHART / "values.yaml").read_text())["rbac"]["rules"]
    for rule in rules:
        if "leases" in rule["resources"]:
            rule["resourceNames"] = ["ws-wattserve-leader"]
        if "modeldeployments" in rule["resources"]:
            rule["resourceNames"] = ["only-this-one"]
    for namespaces in ([], WATCHED):
        docs = render({"operator": {"namespaces": namespaces}, "rbac": {"rules": rules}})
        named = [rule for doc in by_kind(docs, "ClusterRole") + by_kind(docs, "Role")
                 for rule in doc["rules"] if set(rule["resources"]) & {"leases",
                                                                       "modeldeployments"}]
        assert named and all(rule.get("resourceNames") for rule in named), named


def test_without_namespaces_everything_stays_in_one_cluster_role() -> None:
    docs = render({"operator": {"leaderElection": {"enabled": False}}})
    assert by_kind(docs, "Role") == [] and by_kind(docs, "RoleBinding") == []
    grants = _grants(one(docs, "ClusterRole")["rules"])
    assert ("apps", "deployments") in grants


def test_serving_network_policy_per_namespace() -> None:
    docs = render({"operator": {"namespaces": WATCHED},
                   "serving": {"networkPolicy": {"enabled": True}}})
    policies = [p for p in by_kind(docs, "NetworkPolicy")
                if p["metadata"]["name"].endswith("-serving")]
    assert sorted(p["metadata"]["namespace"] for p in policies) == WATCHED
    spec = policies[0]["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "wattserve"}}
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"][0]["from"] == [{"podSelector": {}}]
    assert all(rule["ports"] == [{"port": 8000, "protocol": "TCP"}] for rule in spec["ingress"])


def test_serving_network_policy_needs_namespaces() -> None:
    from .helmutil import RenderError

    with pytest.raises(RenderError, match=r"serving\.networkPolicy"):
        render({"serving": {"networkPolicy": {"enabled": True}}})


def test_api_key_secret_reaches_the_operator() -> None:
    docs = render({"serving": {"apiKeySecret": {"name": "llm-keys", "key": "keys"}}})
    dep = next(d for d in by_kind(docs, "Deployment"))
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    assert env["WATTSERVE_SERVING_API_KEY_SECRET"] == "llm-keys"
    assert env["WATTSERVE_SERVING_API_KEY_SECRET_KEY"] == "keys"
    plain = next(d for d in by_kind(render(), "Deployment"))
    names = {e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "WATTSERVE_SERVING_API_KEY_SECRET" not in names


# -- on the real API server -------------------------------------------------------------

def _helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = cluster.env
    env.setdefault("HELM_CACHE_HOME", "/tmp/wattserve-chart-tests/helm-cache")
    env.setdefault("HELM_CONFIG_HOME", "/tmp/wattserve-chart-tests/helm-config")
    env.setdefault("HELM_DATA_HOME", "/tmp/wattserve-chart-tests/helm-data")
    return subprocess.run([str(cluster.helm or helm()), *args], env=env, capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def scoped_release(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[dict[str, Any]]:
    ns, watched, other = unique_name("wsr"), unique_name("wsw"), unique_name("wso")
    for name in (ns, watched, other):
        kube_cluster.kubectl("create", "namespace", name)
    vfile = tmp_path_factory.mktemp("chart") / "values.yaml"
    vfile.write_text(yaml.safe_dump({"operator": {"namespaces": [watched]}}))
    name = unique_name("ws")
    res = _helm(kube_cluster, "install", name, str(CHART), "-n", ns, "-f", str(vfile),
                "--wait=false", "--skip-crds")
    assert res.returncode == 0, res.stderr
    try:
        yield {"ns": ns, "sa": f"{name}-wattserve", "watched": watched, "other": other}
    finally:
        _helm(kube_cluster, "uninstall", name, "-n", ns, "--wait=false")
        for n in (ns, watched, other):
            kube_cluster.kubectl("delete", "namespace", n, "--wait=false", check=False)


@pytest.mark.integration
@pytest.mark.parametrize(("verb", "group", "resource", "where", "allowed"), [
    ("create", "apps", "deployments", "watched", True),
    ("create", "apps", "deployments", "other", False),  # before: allowed everywhere
    ("delete", "", "services", "other", False),
    ("create", "ray.io", "rayservices", "other", False),
    ("list", "wattserve.dev", "modeldeployments", "watched", True),
    ("list", "wattserve.dev", "modeldeployments", "", False),
    ("list", "wattserve.dev", "servingpools", "", True),
    ("patch", "wattserve.dev", "servingpools/status", "", True),
    ("watch", "", "namespaces", "", True),
    # the leader-election Lease: in the release namespace only
    ("update", "coordination.k8s.io", "leases", "ns", True),
    ("update", "coordination.k8s.io", "leases", "watched", False),
])
def test_scoped_service_account_permissions(kube_cluster: Cluster,
                                            scoped_release: dict[str, Any], verb: str,
                                            group: str, resource: str, where: str,
                                            allowed: bool) -> None:
    attrs = {"verb": verb, "group": group, "resource": resource}
    if where:
        attrs["namespace"] = scoped_release[where]
    ns = scoped_release["ns"]
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": f"system:serviceaccount:{ns}:{scoped_release['sa']}",
                       "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                  "system:authenticated"],
                       "resourceAttributes": attrs}}
    out = kube_cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    assert json.loads(out.stdout)["status"].get("allowed", False) is allowed
