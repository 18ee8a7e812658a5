"""The operator Deployment, ServiceAccount and Service under several value sets."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import NAMESPACE, RELEASE, by_kind, one, render

FULLNAME = f"{RELEASE}-wattserve"

ALL_OPTIONAL = {
    "networkPolicy": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "dashboard": {"enabled": True},
}

# name -> values; every one must render and carry the invariants below.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "replicas-0": {"operator": {"replicas": 0}},
    "optional-all-on": ALL_OPTIONAL,
    "namespaces": {"operator": {"namespaces": ["team-a", "team-b"]}},
    "custom-ports": {"operator": {"healthPort": 18080, "metricsPort": 19090}},
    "three-replicas": {"operator": {"replicas": 3}},
    "no-leader-election": {"operator": {"leaderElection": {"enabled": False}}},
}


def _container(deploy: dict[str, Any]) -> dict[str, Any]:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_restricted_pod_security(name: str) -> None:
    deploy = one(render(VALUE_SETS[name]), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    c = _container(deploy)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc.get("privileged", False) is False
    # A writable /tmp on the read-only root filesystem.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts
    vols = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in vols[mounts["/tmp"]]
    # Only emptyDir volumes (restricted forbids hostPath).
    assert all(set(v) == {"name", "emptyDir"} for v in pod["volumes"])


def test_a_null_uid_leaves_it_to_the_platform_and_stays_non_root() -> None:
    """OpenShift's restricted SCC assigns the UID: null must omit it, never render 0."""
    docs = render({"operator": {"runAsUser": None, "runAsGroup": None},
                   "activator": {"enabled": True}})
    pods = [d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")]
    assert len(pods) == 2  # the operator's and the activator's
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        for sc in (pod["securityContext"], *(c["securityContext"] for c in pod["containers"])):
            assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(sc), sc


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_probes_ports_resources(name: str) -> None:
    values = VALUE_SETS[name]
    op = values.get("operator", {})
    health, metrics = op.get("healthPort", 8080), op.get("metricsPort", 9090)
    c = _container(one(render(values), "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": health, "metrics": metrics}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
        assert c[probe]["periodSeconds"] >= 1
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"]
    assert res["limits"]["memory"]


def test_command_all_namespaces_by_default() -> None:
    c = _container(one(render(), "Deployment"))
    assert c["command"] == ["wattserve", "operator", "--all-namespaces"]


def test_command_with_namespaces() -> None:
    c = _container(one(render(VALUE_SETS["namespaces"]), "Deployment"))
    assert c["command"] == [
        "wattserve", "operator", "--namespace", "team-a", "--namespace", "team-b",
    ]


def test_env_defaults() -> None:
    env = _env(_container(one(render(), "Deployment")))
    assert env["WATTSERVE_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert env["WATTSERVE_ENERGY_SOURCE"] == "auto"
    assert env["WATTSERVE_AUTOSCALE_INTERVAL_SECONDS"] == "30"
    assert env["WATTSERVE_SERVING_IMAGE_CPU"] == "ghcr.io/wattserve/wattserve-serving-cpu:0.1.0"
    assert env["WATTSERVE_SERVING_IMAGE_GPU"] == "ghcr.io/wattserve/wattserve-serving-gpu:0.1.0"
    assert env["WATTSERVE_SERVING_IMPORT_PATH"] == "wattserve_serving.ray_app:app"
    assert env["HOME"] == "/tmp"
    # Every env value is a string (Kubernetes rejects numbers).
    assert all(isinstance(v, str | dict) for v in env.values())


def test_env_and_images_from_values() -> None:
    values = {
        "prometheus": {"url": "http://prom.obs:9090"},
        "energySource": "kepler",
        "autoscaler": {"intervalSeconds": 15},
        "operator": {"image": {"repository": "reg.local/op", "tag": "dev", "pullPolicy": "Never"}},
        "serving": {
            "image": {
                "cpu": {"repository": "reg.local/cpu", "tag": "c1", "pullPolicy": "Always"},
                "gpu": {"repository": "reg.local/gpu", "tag": "g1", "pullPolicy": "Never"},
            },
            "importPath": "my.mod:app",
        },
    }
    c = _container(one(render(values), "Deployment"))
    assert c["image"] == "reg.local/op:dev"
    assert c["imagePullPolicy"] == "Never"
    env = _env(c)
    assert env["WATTSERVE_PROMETHEUS_URL"] == "http://prom.obs:9090"
    assert env["WATTSERVE_ENERGY_SOURCE"] == "kepler"
    assert env["WATTSERVE_AUTOSCALE_INTERVAL_SECONDS"] == "15"
    assert env["WATTSERVE_SERVING_IMAGE_CPU"] == "reg.local/cpu:c1"
    assert env["WATTSERVE_SERVING_IMAGE_CPU_PULL_POLICY"] == "Always"
    assert env["WATTSERVE_SERVING_IMAGE_GPU"] == "reg.local/gpu:g1"
    assert env["WATTSERVE_SERVING_IMAGE_GPU_PULL_POLICY"] == "Never"
    assert env["WATTSERVE_SERVING_IMPORT_PATH"] == "my.mod:app"


def test_replicas_zero_keeps_everything_else() -> None:
    docs = render(VALUE_SETS["replicas-0"])
    assert one(docs, "Deployment")["spec"]["replicas"] == 0
    sa = one(docs, "ServiceAccount")
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]


def test_operator_disabled_omits_deployment_only() -> None:
    docs = render({"operator": {"enabled": False}, **ALL_OPTIONAL})
    kinds = {d["kind"] for d in docs}
    assert "Deployment" not in kinds
    assert "NetworkPolicy" not in kinds  # it would select no pod
    assert "ServiceMonitor" not in kinds
    assert not [d for d in by_kind(docs, "Service")]
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                 "CustomResourceDefinition", "PodMonitor", "ConfigMap"):
        assert by_kind(docs, kind), kind


def test_service_account_wiring() -> None:
    docs = render()
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"] == sa["metadata"] | {"name": FULLNAME, "namespace": NAMESPACE}
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert one(docs, "ClusterRoleBinding")["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME,
    }


def test_existing_service_account() -> None:
    docs = render({"serviceAccount": {"create": False, "name": "mine"}})
    assert not by_kind(docs, "ServiceAccount")
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    assert one(docs, "ClusterRoleBinding")["subjects"][0]["name"] == "mine"


def test_namespaced_resources_in_release_namespace() -> None:
    docs = render(ALL_OPTIONAL)
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                      "ServingPool"}
    for d in docs:
        if d["kind"] in cluster_scoped:
            assert "namespace" not in d["metadata"], d["kind"]
        else:
            assert d["metadata"]["namespace"] == NAMESPACE, d["kind"]


def test_metrics_service_selects_operator_pods() -> None:
    docs = render()
    svc = one(docs, "Service")
    deploy = one(docs, "Deployment")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert deploy["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_serving_network_policy_is_passed_to_the_operator() -> None:
    """The Ray NetworkPolicy leaves Serve's port to the chart's serving policy when it is on."""
    assert "WATTSERVE_SERVING_NETWORK_POLICY" not in _env(_container(one(render(),
                                                                         "Deployment")))
    values = {"serving": {"networkPolicy": {"enabled": True, "namespaces": ["team-a"]}}}
    env = _env(_container(one(render(values), "Deployment")))
    assert env["WATTSERVE_SERVING_NETWORK_POLICY"] == "team-a"  # where the chart's policy is
    values = {"operator": {"namespaces": ["team-a", "team-b"]},
              "serving": {"networkPolicy": {"enabled": True}}}
    env = _env(_container(one(render(values), "Deployment")))
    assert env["WATTSERVE_SERVING_NETWORK_POLICY"] == "1"  # every watched namespace
