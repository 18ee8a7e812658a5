"""backend: deployment — a Deployment (one pod = one model replica) and its Service."""

from __future__ import annotations

from typing import Any

from wattserve import contract
from wattserve.render.inputs import RenderInputs
from wattserve.render.meta import object_meta, scrape_annotations, selector_labels, service_name
from wattserve.render.workload import PORT_NAME, pod_spec, serving_container, storage

DRAIN_DELAY_S = 5  # preStop; then the server drains for contract.SERVING_DRAIN_SECONDS


def render_deployment(inputs: RenderInputs) -> dict[str, Any]:
    store = storage(inputs)
    labels = inputs.labels
    # llama.cpp writes nothing outside /tmp: read-only root. The serving pod never talks
    # to the Kubernetes API: no service-account token.
    read_only = inputs.candidate.engine == "llamacpp"
    container = serving_container(inputs, store, read_only_root=read_only)
    # A pod that is deleted (a move, a scale-down, a rollout) leaves the Service's endpoints
    # while it gets SIGTERM; kube-proxy on every node takes a moment to drop it. It keeps
    # accepting for DRAIN_DELAY_S first (kubelet's sleep action: no binary needed), then
    # the server finishes what is running (contract.SERVING_DRAIN_SECONDS; queued requests
    # get a retryable 503): no new connection meets a closed port.
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": DRAIN_DELAY_S}}}
    # GPUs are scarce: replace in place rather than surge onto GPUs that may not exist.
    strategy = ({"maxSurge": 0, "maxUnavailable": 1} if inputs.gpu
                else {"maxSurge": 1, "maxUnavailable": 0})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(inputs.owner, inputs.md.name, labels),
        "spec": {
            "replicas": inputs.replicas,
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 1800 if inputs.gpu else 600,
            "selector": {"matchLabels": selector_labels(inputs.md.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
            "template": {
                "metadata": {"labels": labels, "annotations": scrape_annotations()},
                "spec": pod_spec(inputs, store, [container], api_access=False,
                                 read_only_root=read_only),
            },
        },
    }


def render_service(inputs: RenderInputs) -> dict[str, Any]:
    """ClusterIP Service on the OpenAI-compatible port (contract.SERVING_PORT)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(inputs.owner, service_name(inputs.md.name), inputs.labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(inputs.md.name),
            "ports": [{"name": PORT_NAME, "port": contract.SERVING_PORT,
                       "targetPort": PORT_NAME, "protocol": "TCP", "appProtocol": "http"}],
        },
    }
