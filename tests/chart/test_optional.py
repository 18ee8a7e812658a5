"""Optional resources: NetworkPolicy, ServiceMonitor, PodMonitor (values toggles)."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import by_kind, one, render

OPTIONAL_KINDS = ("NetworkPolicy", "ServiceMonitor", "PodMonitor", "ConfigMap")


def test_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & set(OPTIONAL_KINDS)


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render({
        "networkPolicy": {"enabled": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
        "podMonitor": {"enabled": True},
        "dashboard": {"enabled": True},
    })


def _operator_pod_labels(docs: list[dict[str, Any]]) -> dict[str, str]:
    labels: dict[str, str] = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def test_network_policy(docs: list[dict[str, Any]]) -> None:
    np = one(docs, "NetworkPolicy")["spec"]
    assert np["podSelector"]["matchLabels"].items() <= _operator_pod_labels(docs).items()
    assert set(np["policyTypes"]) == {"Ingress", "Egress"}
    # Ingress: only the metrics and health ports, only from the selected namespaces.
    assert len(np["ingress"]) == 1
    rule = np["ingress"][0]
    assert {p["port"] for p in rule["ports"]} == {"metrics", "health"}
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    # Egress: DNS, the API server, Prometheus; nothing open-ended without ports.
    ports = [{p["port"] for p in r["ports"]} for r in np["egress"]]
    assert all(ports), np["egress"]
    assert {53} in ports
    assert {443, 6443} in ports
    assert {9090} in ports


def test_network_policy_custom() -> None:
    np = one(render({"networkPolicy": {
        "enabled": True,
        "ingressNamespaceSelectors": [{"matchLabels": {"team": "obs"}}],
        "apiServer": {"cidrs": ["10.96.0.1/32"], "ports": [443]},
        "prometheus": {"port": 9091, "podSelector": {}},
        "dns": {"enabled": False},
    }}), "NetworkPolicy")["spec"]
    assert np["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]
    api, prom = np["egress"]
    assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]
    assert [p["port"] for p in api["ports"]] == [443]
    assert [p["port"] for p in prom["ports"]] == [9091]


def test_network_policy_no_ingress_sources() -> None:
    np = one(render({"networkPolicy": {"enabled": True, "ingressNamespaceSelectors": []}}),
             "NetworkPolicy")["spec"]
    assert np["ingress"] == []


def test_service_monitor(docs: list[dict[str, Any]]) -> None:
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kps"
    svc = one(docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "metrics" and ep["path"] == "/metrics"
    assert ep["honorLabels"] is True


def test_pod_monitor(docs: list[dict[str, Any]]) -> None:
    pm = one(docs, "PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    assert pm["spec"]["selector"] == {"matchExpressions": [
        {"key": "wattserve.dev/model-deployment", "operator": "Exists"}]}
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["path"] == "/metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in ep[
        "relabelings"]


def test_dashboard_configmap(docs: list[dict[str, Any]]) -> None:
    (cm,) = by_kind(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert list(cm["data"]) == ["wattserve.json"]
