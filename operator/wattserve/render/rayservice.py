"""backend: rayservice — a KubeRay RayService (ray.io/v1) running the wattserve Serve app.

The head runs no replicas (``num-cpus: 0``); each Serve replica takes a whole worker pod on
the pool (``num_gpus`` = TP on GPU pools, ``num_cpus`` = the CPU request on CPU pools).
``serveConfigV2`` passes the serving configuration as ``runtime_env.env_vars`` (the same
contract.ENV_* the Deployment backend uses). On GPU pools the app drives vLLM's AsyncLLM
itself (``wattserve_serving.engines.vllm``), not ``ray.serve.llm``: one OpenAI surface,
metrics and energy accounting for both engines (docs/serving.md).

Scaling is the one KubeRay honours: in-tree autoscaling. KubeRay leaves the worker group's
``replicas``/``minReplicas``/``maxReplicas`` out of its RayCluster hash, so a changed count in
the RayService never resizes the live cluster. The operator changes only Serve's
``num_replicas``; a replica that does not fit stays pending until the Ray autoscaler (a
sidecar of the head) adds a worker, and a worker left idle for ``scaleDownDelaySeconds`` is
removed. The worker group's bounds are ``spec.scaling``'s.

KubeRay's own start command is kept (no ``command``/``args`` on the Ray containers: KubeRay
already raises the open-files limit). The head Service exposes only what is needed: the GCS
port (workers join), the dashboard (KubeRay submits the Serve config through it) and Serve;
the Ray client port is left out. Every Ray container runs as the image's non-root user with
no privilege escalation and no capabilities (restricted Pod Security Standard).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

import yaml

from wattserve.render.inputs import RenderInputs
from wattserve.render.meta import object_meta, scrape_annotations
from wattserve.render.workload import (
    SERVING_UID,
    pod_spec,
    serving_container,
    serving_env,
    storage,
)

API_VERSION: Final = "ray.io/v1"
APP_NAME: Final = "wattserve"
DEPLOYMENT_NAME: Final = "wattserve"  # serving/wattserve_serving/ray_app.py DEPLOYMENT_NAME
# KubeRay rejects RayService names over 47 characters or not DNS-1035 labels
# (ray-operator utils/validation.go, MaxRayServiceNameLength).
MAX_RAYSERVICE_NAME: Final = 47
_DNS1035: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Keyed by "GPU pool?". The head runs no replicas (num-cpus 0): the GCS, the Serve controller
# and proxy, the dashboard; mostly idle once the app is deployed, so a quarter CPU on CPU
# pools (a 2-vCPU node then holds the head, its autoscaler and two 1-CPU Serve workers:
# docs/benchmarks-ray.md has the measured memory). GPU pools keep a whole CPU and the room
# the multi-GB vLLM image's imports need.
HEAD_CPU: Final = {False: "250m", True: "1"}
HEAD_MEMORY: Final = {False: "2Gi", True: "4Gi"}
# On CPU pools a Ray worker holds, besides the replica the plan sized, Ray's own processes
# (raylet, dashboard and runtime-env agents, the node's Serve proxy): their memory on top
# (a SmolLM2 worker's whole working set measured 651 MiB: docs/benchmarks-ray.md).
RAY_WORKER_OVERHEAD_MIB: Final = 512
# The autoscaler sidecar polls the GCS and the API server every few seconds.
AUTOSCALER_RESOURCES: Final = {"requests": {"cpu": "100m", "memory": "512Mi"},
                               "limits": {"memory": "512Mi"}}
RESTRICTED_CONTAINER: Final = {"allowPrivilegeEscalation": False,
                               "capabilities": {"drop": ["ALL"]},
                               "runAsNonRoot": True,
                               "seccompProfile": {"type": "RuntimeDefault"}}


def rayservice_name(md_name: str) -> str:
    """The RayService's name: the ModelDeployment's when KubeRay accepts it, else a short,
    stable, valid one (``ws-<prefix>-<hash>``)."""
    if len(md_name) <= MAX_RAYSERVICE_NAME and _DNS1035.match(md_name):
        return md_name
    digest = hashlib.sha256(md_name.encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9-]", "-", md_name.lower())[:MAX_RAYSERVICE_NAME - 13].strip("-")
    return f"ws-{stem}-{digest}" if stem else f"ws-{digest}"


def replica_actor_options(inputs: RenderInputs) -> dict[str, Any]:
    """What one Serve replica asks Ray for: exactly what one worker pod advertises
    (:func:`_worker` sets the same ``num-cpus``/``num-gpus`` explicitly), so each replica
    takes a whole worker and a replica that does not fit makes the autoscaler add one."""
    cand = inputs.candidate
    if inputs.gpu:
        return {"num_cpus": 1, "num_gpus": max(1, cand.tensor_parallel)}
    return {"num_cpus": max(1, cand.cpu_request)}


def serve_config(inputs: RenderInputs, model_path: str) -> dict[str, Any]:
    actor = replica_actor_options(inputs)
    env = {item["name"]: item["value"] for item in serving_env(inputs, model_path)}
    return {
        "applications": [{
            "name": APP_NAME,
            "route_prefix": "/",
            "import_path": inputs.settings.import_path,
            "runtime_env": {"env_vars": env},
            "deployments": [{
                "name": DEPLOYMENT_NAME,
                "num_replicas": max(1, inputs.replicas),
                "ray_actor_options": actor,
            }],
        }],
    }


def _placement(inputs: RenderInputs) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if inputs.pool.spec.node_selector:
        spec["nodeSelector"] = dict(inputs.pool.spec.node_selector)
    tolerations = [tol.to_k8s() for tol in inputs.pool.spec.tolerations]
    if tolerations:
        spec["tolerations"] = tolerations
    return spec


def _head(inputs: RenderInputs) -> dict[str, Any]:
    """On the pool (its nodes already hold the serving image), sized for the GCS, the Serve
    controller and the dashboard; no replicas. Ports: what the Service must expose."""
    ports = [{"name": "gcs-server", "containerPort": 6379},
             {"name": "dashboard", "containerPort": 8265},
             {"name": "serve", "containerPort": 8000}]
    memory = HEAD_MEMORY[inputs.gpu]
    container = {
        "name": "ray-head",
        "image": inputs.settings.ray_image_for(inputs.gpu),
        "imagePullPolicy": inputs.pull_policy,
        "ports": ports,
        "resources": {"requests": {"cpu": HEAD_CPU[inputs.gpu], "memory": memory},
                      "limits": {"memory": memory}},
        "securityContext": dict(RESTRICTED_CONTAINER),
    }
    return {
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "template": {
            "metadata": {"labels": inputs.labels},
            "spec": {
                "containers": [container],
                "enableServiceLinks": False,
                "securityContext": _pod_security(),
                **_placement(inputs),
            },
        },
    }


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": SERVING_UID, "runAsGroup": SERVING_UID,
            "fsGroup": SERVING_UID, "seccompProfile": {"type": "RuntimeDefault"}}


def worker_bounds(inputs: RenderInputs) -> tuple[int, int, int]:
    """(minReplicas, replicas, maxReplicas) of the worker group: ``spec.scaling``'s bounds,
    widened to hold the current count."""
    scaling = inputs.md.spec.scaling
    current = max(1, inputs.replicas)
    low = min(current, max(0, scaling.min_replicas))
    high = max(current, scaling.max_replicas)
    return low, current, high


def _worker(inputs: RenderInputs) -> dict[str, Any]:
    store = storage(inputs)
    container = serving_container(inputs, store, name="ray-worker", with_probes=False)
    container["image"] = inputs.settings.ray_image_for(inputs.gpu)
    if not inputs.gpu:
        plan_mib = max(1, inputs.candidate.memory_request_gib) * 1024
        memory = f"{plan_mib + RAY_WORKER_OVERHEAD_MIB}Mi"
        container["resources"]["requests"]["memory"] = memory
        container["resources"]["limits"]["memory"] = memory
    container["securityContext"] = dict(RESTRICTED_CONTAINER)
    low, current, high = worker_bounds(inputs)
    # Ray's resources set explicitly, not derived by KubeRay from the container's CPU/GPU
    # figures (which round millicores and count the limit): one replica per worker.
    actor = replica_actor_options(inputs)
    params = {"num-cpus": str(actor["num_cpus"])}
    if "num_gpus" in actor:
        params["num-gpus"] = str(actor["num_gpus"])
    return {
        "groupName": inputs.pool.name,
        "replicas": current,
        "minReplicas": low,
        "maxReplicas": high,
        "rayStartParams": params,
        "template": {
            "metadata": {"labels": inputs.labels, "annotations": scrape_annotations()},
            "spec": pod_spec(inputs, store, [container]),
        },
    }


def _autoscaler(inputs: RenderInputs) -> dict[str, Any]:
    return {
        "upscalingMode": "Default",
        "idleTimeoutSeconds": max(1, inputs.md.spec.scaling.scale_down_delay_seconds),
        "imagePullPolicy": inputs.pull_policy,
        "resources": AUTOSCALER_RESOURCES,
        "securityContext": dict(RESTRICTED_CONTAINER),
    }


def render_rayservice(inputs: RenderInputs) -> dict[str, Any]:
    store = storage(inputs)
    return {
        "apiVersion": API_VERSION,
        "kind": "RayService",
        "metadata": object_meta(inputs.owner, rayservice_name(inputs.md.name), inputs.labels),
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(inputs, store.model_path),
                                            sort_keys=True),
            "rayClusterConfig": {
                "rayVersion": inputs.settings.ray_version,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": _autoscaler(inputs),
                "headGroupSpec": _head(inputs),
                "workerGroupSpecs": [_worker(inputs)],
            },
        },
    }
