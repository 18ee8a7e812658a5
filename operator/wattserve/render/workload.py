"""The serving container and pod spec, shared by the Deployment and RayService renderers."""

from __future__ import annotations

from typing import Any, Final

from wattserve import contract
from wattserve.planning.memory import weight_bytes
from wattserve.render.inputs import RenderInputs
from wattserve.render.sources import ModelStorage, model_storage

CONTAINER: Final = "serving"
PORT_NAME: Final = "http"
SERVING_UID: Final = 10001  # the serving images' user (serving/Dockerfile.*)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def storage(inputs: RenderInputs) -> ModelStorage:
    return model_storage(inputs.md.spec.model.source, inputs.image, inputs.pull_policy,
                         inputs.settings, weights_bytes=weight_bytes(inputs.md.spec.model))


def serving_env(inputs: RenderInputs, model_path: str) -> list[dict[str, Any]]:
    """The contract.ENV_* variables of the serving container, in a stable order."""
    md, pool, cand = inputs.md, inputs.pool, inputs.candidate
    pairs: list[tuple[str, str]] = [
        (contract.ENV_MODEL_NAME, md.spec.model.name),
        (contract.ENV_MODEL_PATH, model_path),
        (contract.ENV_ENGINE, cand.engine),
        (contract.ENV_POOL, pool.name),
        (contract.ENV_NAMESPACE, md.namespace),
        (contract.ENV_MODEL_DEPLOYMENT, md.name),
        (contract.ENV_CONTEXT_LENGTH, str(md.spec.model.context_length)),
        (contract.ENV_PORT, str(contract.SERVING_PORT)),
        (contract.ENV_NODE_IDLE_WATTS, _number(pool.spec.power.idle_watts)),
        (contract.ENV_NODE_MAX_WATTS, _number(pool.spec.power.max_watts)),
        (contract.ENV_NODE_CPUS, str(pool.spec.node.cpu)),
    ]
    if cand.threads > 0:
        pairs.append((contract.ENV_THREADS, str(cand.threads)))
    if inputs.gpu:
        pairs.append((contract.ENV_GPU_COUNT, str(max(1, cand.tensor_parallel))))
    if inputs.settings.max_queue > 0:
        pairs.append((contract.ENV_MAX_QUEUE, str(inputs.settings.max_queue)))
    return [{"name": name, "value": value} for name, value in pairs]


def resources(inputs: RenderInputs) -> dict[str, Any]:
    """Requests from the plan; limits: memory always, CPU on CPU pools, GPUs on GPU pools."""
    cand = inputs.candidate
    cpu = str(max(1, cand.cpu_request))
    memory = f"{max(1, cand.memory_request_gib)}Gi"
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    limits: dict[str, str] = {"memory": memory}
    accelerator = inputs.pool.spec.accelerator
    if accelerator is not None:
        gpus = str(max(1, cand.tensor_parallel))
        requests[accelerator.resource_name] = gpus
        limits[accelerator.resource_name] = gpus
    else:
        limits["cpu"] = cpu  # Guaranteed QoS: llama.cpp threads = the CPUs it may use
    return {"requests": requests, "limits": limits}


def probes(gpu: bool) -> dict[str, Any]:
    """Readiness/liveness on /health; a startup probe covers model loading."""

    def http(period: int, timeout: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": contract.HEALTH_PATH, "port": PORT_NAME},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": failures,
        }

    return {
        "startupProbe": http(10, 5, 180 if gpu else 60),  # 30 min GPU, 10 min CPU
        "readinessProbe": http(5, 3, 3),
        "livenessProbe": http(15, 5, 4),
    }


def serving_container(inputs: RenderInputs, store: ModelStorage, name: str = CONTAINER,
                      extra_ports: tuple[dict[str, Any], ...] = (),
                      with_probes: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": inputs.image,
        "imagePullPolicy": inputs.pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": contract.SERVING_PORT,
                   "protocol": "TCP"}, *extra_ports],
        "env": serving_env(inputs, store.model_path),
        "resources": resources(inputs),
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if with_probes:
        container.update(probes(inputs.gpu))
    mounts = list(store.mounts)
    if inputs.gpu:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if mounts:
        container["volumeMounts"] = mounts
    return container


def pod_spec(inputs: RenderInputs, store: ModelStorage,
             containers: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool placement (nodeSelector, tolerations), volumes and init containers."""
    spec: dict[str, Any] = {
        "containers": containers,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "runAsUser": SERVING_UID,
                            "runAsGroup": SERVING_UID, "fsGroup": SERVING_UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    selector = dict(inputs.pool.spec.node_selector)
    if selector:
        spec["nodeSelector"] = selector
    tolerations = [tol.to_k8s() for tol in inputs.pool.spec.tolerations]
    if tolerations:
        spec["tolerations"] = tolerations
    if store.init_containers:
        spec["initContainers"] = [dict(c) for c in store.init_containers]
    volumes = [dict(v) for v in store.volumes]
    if inputs.gpu:
        shm = max(1, inputs.candidate.memory_request_gib // 4)
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory",
                                                     "sizeLimit": f"{shm}Gi"}})
    if volumes:
        spec["volumes"] = volumes
    return spec
