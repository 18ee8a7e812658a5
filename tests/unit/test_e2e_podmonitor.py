"""The chart's PodMonitor as the scrape config the e2e suite's Prometheus uses
(e2e/harness/podmonitor.py): what it keeps and labels.

The e2e suite checks the same config for real: its Prometheus (built with Kubernetes
discovery, which Debian's lacks) loads it, finds the serving pods through Kubernetes service
discovery and labels their series with pod and node (e2e/test_full_stack.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from e2e.harness.podmonitor import scrape_configs  # noqa: E402

CHART = REPO / "charts" / "wattserve"


def _chart_pod_monitor() -> dict[str, Any]:
    from wattserve.devcluster.components import binary_paths

    helm = binary_paths()["helm"]
    if not helm.exists():
        pytest.skip("helm not built (wattserve dev-cluster build)")
    out = subprocess.run(
        [str(helm), "template", "wattserve", str(CHART), "-n", "wattserve-system",
         "--show-only", "templates/podmonitor.yaml", "--set", "podMonitor.enabled=true",
         "--api-versions", "monitoring.coreos.com/v1"],  # a cluster with the Prometheus Operator
        capture_output=True, text=True, check=True, timeout=60).stdout
    doc: dict[str, Any] = yaml.safe_load(out)
    return doc


def test_chart_pod_monitor_keeps_serving_pods_on_the_named_port_and_labels_the_node() -> None:
    pm = _chart_pod_monitor()
    (config,) = scrape_configs(pm, "/k/config")
    assert config["kubernetes_sd_configs"] == [{"role": "pod", "kubeconfig_file": "/k/config"}]
    assert config["honor_labels"] is True and config["metrics_path"] == "/metrics"
    rules = config["relabel_configs"]
    keeps = [r for r in rules if r.get("action") == "keep"]
    assert {"action": "keep", "regex": "true", "source_labels":
            ["__meta_kubernetes_pod_labelpresent_wattserve_dev_model_deployment"]} in keeps
    assert {"action": "keep", "regex": "http",
            "source_labels": ["__meta_kubernetes_pod_container_port_name"]} in keeps
    # the PodMonitor's own relabeling comes after the standard target labels
    assert rules[-1] == {"source_labels": ["__meta_kubernetes_pod_node_name"],
                         "target_label": "node"}
    assert {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"} in rules


def test_selector_operators_and_namespaces() -> None:
    pm = {"metadata": {"name": "m", "namespace": "ns"},
          "spec": {"selector": {"matchLabels": {"app": "a.b"},
                                "matchExpressions": [
                                    {"key": "tier", "operator": "In", "values": ["x", "y"]},
                                    {"key": "skip", "operator": "DoesNotExist"}]},
                   "podMetricsEndpoints": [{"port": "web", "interval": "5s"}]}}
    (config,) = scrape_configs(pm, "/k")
    assert config["kubernetes_sd_configs"][0]["namespaces"] == {"names": ["ns"]}
    assert config["scrape_interval"] == "5s" and config["honor_labels"] is False
    rules = config["relabel_configs"]
    assert {"action": "keep", "regex": r"(a\.b);true", "source_labels": [
        "__meta_kubernetes_pod_label_app", "__meta_kubernetes_pod_labelpresent_app"]} in rules
    assert {"action": "keep", "regex": "(x|y);true", "source_labels": [
        "__meta_kubernetes_pod_label_tier", "__meta_kubernetes_pod_labelpresent_tier"]} in rules
    assert {"action": "drop", "regex": "true",
            "source_labels": ["__meta_kubernetes_pod_labelpresent_skip"]} in rules
    with pytest.raises(ValueError, match="Unknown"):
        scrape_configs({**pm, "spec": {**pm["spec"], "selector": {"matchExpressions": [
            {"key": "k", "operator": "Unknown"}]}}}, "/k")
