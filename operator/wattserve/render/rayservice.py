"""backend: rayservice — a KubeRay RayService (ray.io/v1) running the wattserve Serve app.

The head runs no replicas (``num-cpus: 0``); one worker pod per Serve replica sits on the
pool with the plan's resources. ``serveConfigV2`` passes the serving configuration as
``runtime_env.env_vars`` (the same contract.ENV_* the Deployment backend uses): vLLM on GPU
pools (Ray Serve LLM inside the wattserve app), llama.cpp on CPU pools.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from wattserve.render.inputs import RenderInputs
from wattserve.render.meta import object_meta, scrape_annotations
from wattserve.render.workload import pod_spec, serving_container, serving_env, storage

API_VERSION: Final = "ray.io/v1"
APP_NAME: Final = "wattserve"
DEPLOYMENT_NAME: Final = "wattserve"  # serving/wattserve_serving/ray_app.py DEPLOYMENT_NAME


def serve_config(inputs: RenderInputs, model_path: str) -> dict[str, Any]:
    cand = inputs.candidate
    actor: dict[str, Any] = {"num_cpus": max(1, cand.cpu_request)}
    if inputs.gpu:
        actor = {"num_cpus": 1, "num_gpus": max(1, cand.tensor_parallel)}
    env = {item["name"]: item["value"] for item in serving_env(inputs, model_path)}
    return {
        "applications": [{
            "name": APP_NAME,
            "route_prefix": "/",
            "import_path": inputs.settings.import_path,
            "runtime_env": {"env_vars": env},
            "deployments": [{
                "name": DEPLOYMENT_NAME,
                "num_replicas": inputs.replicas,
                "ray_actor_options": actor,
            }],
        }],
    }


def _head(inputs: RenderInputs) -> dict[str, Any]:
    ports = [{"name": "gcs", "containerPort": 6379}, {"name": "dashboard", "containerPort": 8265},
             {"name": "client", "containerPort": 10001}, {"name": "serve", "containerPort": 8000}]
    return {
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "template": {
            "metadata": {"labels": inputs.labels},
            "spec": {
                "containers": [{
                    "name": "ray-head",
                    "image": inputs.image,
                    "imagePullPolicy": inputs.pull_policy,
                    "command": ["/bin/bash", "-lc", "--"],
                    "args": ["ulimit -n 65536; $KUBERAY_GEN_RAY_START_CMD"],
                    "ports": ports,
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                  "limits": {"memory": "2Gi"}},
                }],
            },
        },
    }


def _worker(inputs: RenderInputs) -> dict[str, Any]:
    store = storage(inputs)
    container = serving_container(inputs, store, name="ray-worker", with_probes=False)
    container["command"] = ["/bin/bash", "-lc", "--"]
    container["args"] = ["ulimit -n 65536; $KUBERAY_GEN_RAY_START_CMD"]
    scaling = inputs.md.spec.scaling
    return {
        "groupName": inputs.pool.name,
        "replicas": inputs.replicas,
        "minReplicas": min(inputs.replicas, max(1, scaling.min_replicas)),
        "maxReplicas": max(inputs.replicas, scaling.max_replicas),
        "rayStartParams": {},
        "template": {
            "metadata": {"labels": inputs.labels, "annotations": scrape_annotations()},
            "spec": pod_spec(inputs, store, [container]),
        },
    }


def render_rayservice(inputs: RenderInputs) -> dict[str, Any]:
    store = storage(inputs)
    return {
        "apiVersion": API_VERSION,
        "kind": "RayService",
        "metadata": object_meta(inputs.owner, inputs.md.name, inputs.labels),
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(inputs, store.model_path),
                                            sort_keys=True),
            "rayClusterConfig": {
                "rayVersion": inputs.settings.ray_version,
                "enableInTreeAutoscaling": False,
                "headGroupSpec": _head(inputs),
                "workerGroupSpecs": [_worker(inputs)],
            },
        },
    }
