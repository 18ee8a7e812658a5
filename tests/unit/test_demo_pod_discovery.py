"""The demo's stand-in for Prometheus' Kubernetes pod discovery (Debian's Prometheus has
none) keeps what the chart's PodMonitor keeps, with the same labels; load only goes to
loopback or the dev cluster's Service addresses."""

from __future__ import annotations

from typing import Any

from e2e.clusterload import _allowed
from e2e.realpods import MD_LABEL, podmonitor_targets


def _pod(name: str, labels: dict[str, str], phase: str = "Running", ip: str = "10.88.0.5",
         port: str = "http") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "demo", "labels": labels},
            "spec": {"nodeName": "realnode", "containers": [
                {"name": "serving", "ports": [{"name": port, "containerPort": 8000},
                                              {"name": "other", "containerPort": 9000}]}]},
            "status": {"phase": phase, "podIP": ip}}


def test_serving_pods_become_targets_with_the_podmonitor_labels() -> None:
    groups = podmonitor_targets([_pod("a", {MD_LABEL: "smollm2"})])
    assert groups == [{"targets": ["10.88.0.5:8000"],
                       "labels": {"namespace": "demo", "pod": "a", "container": "serving",
                                  "node": "realnode"}}]


def test_unlabelled_pending_finished_and_unnamed_port_pods_are_dropped() -> None:
    pods = [_pod("nolabel", {}), _pod("pending", {MD_LABEL: "m"}, phase="Pending"),
            _pod("done", {MD_LABEL: "m"}, phase="Succeeded"),
            _pod("noip", {MD_LABEL: "m"}, ip=""),
            _pod("port", {MD_LABEL: "m"}, port="metrics")]
    assert podmonitor_targets(pods) == []


def test_load_targets_only_loopback_or_cluster_services() -> None:
    assert _allowed("http://127.0.0.1:8000") and _allowed("http://10.96.12.7:8000")
    assert not _allowed("http://10.250.250.1:8000") and not _allowed("http://example.com")
