"""backend: rayservice — the NetworkPolicy that keeps the Ray head's control ports private.

The head Service keeps the dashboard port (KubeRay submits the Serve config through it), so
the policy decides who may reach it. It selects every pod of the ModelDeployment (head and
workers) and allows ingress from:

* the KubeRay operator's pods (``RenderSettings.kuberay_pod_labels`` in any namespace, or
  in the namespaces matching ``kuberay_namespace_labels``): the dashboard port only;
* the ModelDeployment's own Ray pods: every port (GCS, raylets, object transfer, workers);
* anyone: Serve's HTTP port (the OpenAI API and its metrics), as the Deployment backend —
  unless the chart's serving NetworkPolicy is on in the model's namespace
  (``serving_network_policy``, ``serving_network_policy_namespaces``): policies add up, so
  this one then leaves the port to that one's peers.

Everything else (Ray Client, the Jobs API from other pods) is refused wherever the cluster's
network plugin enforces NetworkPolicies; egress is left alone (the autoscaler sidecar talks
to the API server).
"""

from __future__ import annotations

from typing import Any, Final

from wattserve import contract
from wattserve.render.inputs import RenderInputs
from wattserve.render.meta import object_meta, selector_labels
from wattserve.render.rayservice import rayservice_name

API_VERSION: Final = "networking.k8s.io/v1"
KIND: Final = "NetworkPolicy"
DASHBOARD_PORT: Final = 8265


def _tcp(port: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port}]


def _kuberay_peer(inputs: RenderInputs) -> dict[str, Any]:
    settings = inputs.settings
    return {
        "namespaceSelector": {"matchLabels": dict(settings.kuberay_namespace_labels)},
        "podSelector": {"matchLabels": dict(settings.kuberay_pod_labels)},
    }


def render_ray_network_policy(inputs: RenderInputs) -> dict[str, Any]:
    own = {"matchLabels": selector_labels(inputs.md.name)}
    ingress: list[dict[str, Any]] = [
        {"from": [_kuberay_peer(inputs)], "ports": _tcp(DASHBOARD_PORT)},
        {"from": [{"podSelector": own}]},
    ]
    settings = inputs.settings
    guarded = settings.serving_network_policy and (
        not settings.serving_network_policy_namespaces
        or inputs.md.namespace in settings.serving_network_policy_namespaces)
    if not guarded:  # no serving policy of the chart here: Serve's port stays open
        ingress.append({"ports": _tcp(contract.SERVING_PORT)})
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(inputs.owner, rayservice_name(inputs.md.name), inputs.labels),
        "spec": {
            "podSelector": own,
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
