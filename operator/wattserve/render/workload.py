"""The serving container and pod spec, shared by the Deployment and RayService renderers."""

from __future__ import annotations

from typing import Any, Final

from wattserve import contract
from wattserve.planning.memory import weight_bytes
from wattserve.render.inputs import RenderInputs
from wattserve.render.security import (
    SERVING_UID,
    bounded_volume,
    container_security,
    k8s_literal,
    pod_security,
    tmp_mount,
    tmp_volume,
)
from wattserve.render.sources import ModelStorage, model_storage

CONTAINER: Final = "serving"
PORT_NAME: Final = "http"
__all__ = ["CONTAINER", "PORT_NAME", "SERVING_UID", "pod_spec", "serving_container"]
API_KEYS_VOLUME: Final = "api-keys"
API_KEYS_DIR: Final = "/var/run/wattserve/api-keys"
ENV_API_KEY_FILE: Final = "WATTSERVE_API_KEY_FILE"  # read by wattserve_serving.auth
ENV_FETCH_MAX_BYTES: Final = "WATTSERVE_FETCH_MAX_BYTES"  # read by wattserve_serving.fetch


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
        (contract.ENV_TASK, md.spec.model.task.value),
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
    if inputs.settings.parallel > 0 and cand.engine == "llamacpp":
        pairs.append((contract.ENV_PARALLEL, str(inputs.settings.parallel)))
    return [{"name": name, "value": value} for name, value in pairs]


def resources(inputs: RenderInputs) -> dict[str, Any]:
    """Requests from the plan; limits: memory always, CPU on CPU pools, GPUs on GPU pools."""
    cand = inputs.candidate
    cpu = str(max(1, cand.cpu_request))
    millis = cand.cpu_millis
    memory = f"{max(1, cand.memory_request_gib)}Gi"
    requested = str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    requests: dict[str, str] = {"cpu": requested, "memory": memory}
    limits: dict[str, str] = {"memory": memory}
    accelerator = inputs.pool.spec.accelerator
    if accelerator is not None:
        gpus = str(max(1, cand.tensor_parallel))
        requests[accelerator.resource_name] = gpus
        limits[accelerator.resource_name] = gpus
    else:
        # The limit is the llama.cpp threads (the serving app reads its threads from it); with
        # a request below it (the pool's tuning.cpuMillisPerThread) the pod is Burstable.
        limits["cpu"] = cpu
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

    if gpu:
        return {
            "startupProbe": http(10, 5, 180),  # 30 min
            "readinessProbe": http(5, 3, 3),
            "livenessProbe": http(15, 5, 4),
        }
    # CPU: a small model loads in about a second, and a replica woken from zero has requests
    # held for it (the activator), so Ready is noticed within a second, not a 10 s tick
    # (docs/benchmarks-activator.md: the cold start went from 10.2 s to the load time).
    return {
        "startupProbe": http(1, 2, 600),  # 10 min
        "readinessProbe": http(1, 3, 3),  # unready after ~12 s of failures, as before
        "livenessProbe": http(15, 5, 4),
    }


def serving_container(inputs: RenderInputs, store: ModelStorage, name: str = CONTAINER,
                      extra_ports: tuple[dict[str, Any], ...] = (),
                      with_probes: bool = True, read_only_root: bool = False) -> dict[str, Any]:
    """``read_only_root``: a read-only root filesystem with a bounded /tmp (pass the same
    to ``pod_spec``); only for engines that write nowhere else (llama.cpp)."""
    env = serving_env(inputs, store.model_path)
    secret = inputs.settings.api_key_secret
    if secret:
        env.append({"name": ENV_API_KEY_FILE,
                    "value": f"{API_KEYS_DIR}/{inputs.settings.api_key_key}"})
    container: dict[str, Any] = {
        "name": name,
        "image": inputs.image,
        "imagePullPolicy": inputs.pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": contract.SERVING_PORT,
                   "protocol": "TCP"}, *extra_ports],
        # Kubernetes would expand $(VAR) in env values: the model path comes from the source.
        "env": [{**e, "value": k8s_literal(e["value"])} if "value" in e else e for e in env],
        "resources": resources(inputs),
        "securityContext": container_security(read_only_root),
    }
    if with_probes:
        container.update(probes(inputs.gpu))
    mounts = list(store.mounts)
    if inputs.gpu:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if read_only_root:
        mounts.append(tmp_mount())
    if secret:
        mounts.append({"name": API_KEYS_VOLUME, "mountPath": API_KEYS_DIR, "readOnly": True})
    if mounts:
        container["volumeMounts"] = mounts
    return container


def download_limit_gib(inputs: RenderInputs) -> int:
    """Bound of a download emptyDir: twice the replica's memory (weights fit in memory)."""
    return max(2, 2 * inputs.candidate.memory_request_gib)


TERMINATION_GRACE_S: Final = 5 + contract.SERVING_DRAIN_SECONDS + 5


def pod_spec(inputs: RenderInputs, store: ModelStorage,
             containers: list[dict[str, Any]], *, api_access: bool = True,
             read_only_root: bool = False) -> dict[str, Any]:
    """Pool placement (nodeSelector, tolerations), volumes and init containers.

    Every container, init containers included, passes the restricted Pod Security
    Standard; ``api_access=False`` mounts no service-account token; emptyDirs are bounded.
    """
    spec: dict[str, Any] = {
        "containers": containers,
        "enableServiceLinks": False,
        # preStop delay (5 s) + the server's drain + 5 s for it to exit: 30 s.
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": pod_security(SERVING_UID),
    }
    if not api_access:
        spec["automountServiceAccountToken"] = False
    selector = dict(inputs.pool.spec.node_selector)
    if selector:
        spec["nodeSelector"] = selector
    tolerations = [tol.to_k8s() for tol in inputs.pool.spec.tolerations]
    if tolerations:
        spec["tolerations"] = tolerations
    limit_gib = download_limit_gib(inputs)
    if store.init_containers:
        # Their securityContext comes with them (render.sources, from render.security).
        fetch_env = {"name": ENV_FETCH_MAX_BYTES, "value": str(limit_gib << 30)}
        spec["initContainers"] = [{**c, "env": [*c.get("env", ()), fetch_env]}
                                  for c in store.init_containers]
    volumes = [bounded_volume(v, f"{limit_gib}Gi") for v in store.volumes]
    if read_only_root:
        volumes.append(tmp_volume())
    if inputs.settings.api_key_secret:
        volumes.append({"name": API_KEYS_VOLUME, "secret": {
            "secretName": inputs.settings.api_key_secret, "defaultMode": 0o440}})
    if inputs.gpu:
        shm = max(1, inputs.candidate.memory_request_gib // 4)
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory",
                                                     "sizeLimit": f"{shm}Gi"}})
    if volumes:
        spec["volumes"] = volumes
    return spec
