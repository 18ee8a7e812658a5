"""A PodMonitor (monitoring.coreos.com/v1) as a Prometheus scrape config.

The e2e suite runs a real Prometheus on the host without the Prometheus Operator, so this
module does the operator's job for one PodMonitor: Kubernetes pod service discovery, the
PodMonitor's pod and namespace selectors and port as ``keep`` rules, the standard target
labels (namespace, pod, container, job), then the PodMonitor's own relabelings, in the order
the Prometheus Operator writes them. Written from the PodMonitor API reference; pure (no I/O).
"""

from __future__ import annotations

import re
from typing import Any

_FIELDS = {"sourceLabels": "source_labels", "targetLabel": "target_label",
           "separator": "separator", "regex": "regex", "replacement": "replacement",
           "modulus": "modulus"}


def _sanitize(label: str) -> str:
    """Kubernetes label name → the suffix of its __meta_kubernetes_pod_label_* label."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _selector_rules(selector: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for key, value in sorted(selector.get("matchLabels", {}).items()):
        name = _sanitize(key)
        rules.append({"action": "keep", "regex": f"({re.escape(str(value))});true",
                      "source_labels": [f"__meta_kubernetes_pod_label_{name}",
                                        f"__meta_kubernetes_pod_labelpresent_{name}"]})
    for expr in selector.get("matchExpressions", []):
        name, op = _sanitize(expr["key"]), expr["operator"]
        present = f"__meta_kubernetes_pod_labelpresent_{name}"
        if op in ("Exists", "DoesNotExist"):
            rules.append({"action": "keep" if op == "Exists" else "drop",
                          "source_labels": [present], "regex": "true"})
        elif op in ("In", "NotIn"):
            values = "|".join(re.escape(str(v)) for v in expr.get("values", []))
            rules.append({"action": "keep" if op == "In" else "drop",
                          "source_labels": [f"__meta_kubernetes_pod_label_{name}", present],
                          "regex": f"({values});true"})
        else:
            raise ValueError(f"PodMonitor selector: unknown operator {op!r}")
    return rules


def _relabeling(rule: dict[str, Any]) -> dict[str, Any]:
    out = {_FIELDS[k]: v for k, v in rule.items() if k in _FIELDS}
    if "action" in rule:
        out["action"] = str(rule["action"]).lower()
    return out


def scrape_configs(pod_monitor: dict[str, Any], kubeconfig: str) -> list[dict[str, Any]]:
    """One scrape config per endpoint of ``pod_monitor``; discovery through ``kubeconfig``."""
    meta, spec = pod_monitor["metadata"], pod_monitor["spec"]
    ns_selector = spec.get("namespaceSelector", {})
    sd: dict[str, Any] = {"role": "pod", "kubeconfig_file": kubeconfig}
    if not ns_selector.get("any"):
        sd["namespaces"] = {"names": ns_selector.get("matchNames") or [meta["namespace"]]}
    job = f"{meta['namespace']}/{meta['name']}"
    configs = []
    for index, endpoint in enumerate(spec["podMetricsEndpoints"]):
        relabel: list[dict[str, Any]] = [
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
             "regex": "(Failed|Succeeded)"},
            *_selector_rules(spec.get("selector", {})),
        ]
        if "port" in endpoint:
            relabel.append({"action": "keep", "regex": re.escape(str(endpoint["port"])),
                            "source_labels": ["__meta_kubernetes_pod_container_port_name"]})
        relabel += [
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"],
             "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"target_label": "job", "replacement": job},
            *(_relabeling(r) for r in endpoint.get("relabelings", [])),
        ]
        config: dict[str, Any] = {
            "job_name": f"podMonitor/{job}/{index}",
            "honor_labels": bool(endpoint.get("honorLabels", False)),
            "metrics_path": endpoint.get("path", "/metrics"),
            "kubernetes_sd_configs": [sd],
            "relabel_configs": relabel,
        }
        for field, key in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout"),
                           ("scheme", "scheme")):
            if field in endpoint:
                config[key] = endpoint[field]
        configs.append(config)
    return configs
