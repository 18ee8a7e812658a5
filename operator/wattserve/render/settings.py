"""Operator settings that shape the rendered children (images, import path, caches).

Read once from the environment (the Helm chart sets these); pure data otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from wattserve.api.labels import extended_resource_problem, is_dns_label
from wattserve.api.types import ServingPool

DEFAULT_VERSION: Final = "0.1.0"
DEFAULT_IMAGE_CPU: Final = f"ghcr.io/wattserve/wattserve-serving-cpu:{DEFAULT_VERSION}"
DEFAULT_IMAGE_GPU: Final = f"ghcr.io/wattserve/wattserve-serving-gpu:{DEFAULT_VERSION}"
# RayServices on CPU pools: serving-cpu plus wget, which KubeRay's injected probes run
# (operator/wattserve/images/definitions/serving-cpu-ray.yaml).
DEFAULT_IMAGE_RAY_CPU: Final = f"ghcr.io/wattserve/wattserve-serving-cpu-ray:{DEFAULT_VERSION}"
DEFAULT_IMPORT_PATH: Final = "wattserve_serving.ray_app:app"
DEFAULT_RAY_VERSION: Final = "2.60.0"
MODELS_DIR: Final = "/models"
PULL_POLICIES: Final = frozenset({"Always", "IfNotPresent", "Never"})

ENV_IMAGE_CPU: Final = "WATTSERVE_SERVING_IMAGE_CPU"
ENV_IMAGE_CPU_PULL: Final = "WATTSERVE_SERVING_IMAGE_CPU_PULL_POLICY"
ENV_IMAGE_GPU: Final = "WATTSERVE_SERVING_IMAGE_GPU"
ENV_IMAGE_RAY_CPU: Final = "WATTSERVE_SERVING_IMAGE_RAY_CPU"
ENV_IMAGE_GPU_PULL: Final = "WATTSERVE_SERVING_IMAGE_GPU_PULL_POLICY"
ENV_IMPORT_PATH: Final = "WATTSERVE_SERVING_IMPORT_PATH"
ENV_RAY_VERSION: Final = "WATTSERVE_RAY_VERSION"
ENV_MODEL_CACHE_PVC: Final = "WATTSERVE_MODEL_CACHE_PVC"
ENV_HF_TOKEN_SECRET: Final = "WATTSERVE_HF_TOKEN_SECRET"
ENV_HF_TOKEN_KEY: Final = "WATTSERVE_HF_TOKEN_SECRET_KEY"
ENV_S3_SECRET: Final = "WATTSERVE_S3_CREDENTIALS_SECRET"
ENV_MAX_QUEUE: Final = "WATTSERVE_SERVING_MAX_QUEUE"
ENV_PARALLEL: Final = "WATTSERVE_SERVING_PARALLEL"
ENV_API_KEY_SECRET: Final = "WATTSERVE_SERVING_API_KEY_SECRET"
ENV_API_KEY_KEY: Final = "WATTSERVE_SERVING_API_KEY_SECRET_KEY"
ENV_SERVING_NETWORK_POLICY: Final = "WATTSERVE_SERVING_NETWORK_POLICY"
ENV_KUBERAY_POD_LABELS: Final = "WATTSERVE_KUBERAY_OPERATOR_POD_LABELS"
ENV_KUBERAY_NAMESPACE_LABELS: Final = "WATTSERVE_KUBERAY_OPERATOR_NAMESPACE_LABELS"
ENV_GPU_RESOURCES: Final = "WATTSERVE_SERVING_GPU_RESOURCES"
# The GPU serving image is vLLM's CUDA build: it drives NVIDIA devices only.
DEFAULT_GPU_RESOURCES: Final = frozenset({"nvidia.com/gpu"})
# The pods of KubeRay's Helm chart (kuberay-operator, v1.5.0) carry this label.
DEFAULT_KUBERAY_POD_LABELS: Final = (("app.kubernetes.io/name", "kuberay-operator"),)
_LABEL_KEY: Final = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*"
                               r"[A-Za-z0-9])?$")
_LABEL_VALUE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class SettingsError(ValueError):
    """An operator setting from the environment is invalid (names the variable)."""


@dataclass(frozen=True)
class RenderSettings:
    """What the renderers need beyond the ModelDeployment, the pool and the plan."""

    image_cpu: str = DEFAULT_IMAGE_CPU
    image_gpu: str = DEFAULT_IMAGE_GPU
    image_ray_cpu: str = DEFAULT_IMAGE_RAY_CPU  # backend rayservice on CPU pools
    pull_policy_cpu: str = "IfNotPresent"
    pull_policy_gpu: str = "IfNotPresent"
    import_path: str = DEFAULT_IMPORT_PATH
    ray_version: str = DEFAULT_RAY_VERSION
    # Shared read-write PVC for downloaded weights (hf://, s3://); "" = an emptyDir per pod.
    model_cache_pvc: str = ""
    # Secret holding the Hugging Face token (env HF_TOKEN, optional); "" = none.
    hf_token_secret: str = ""
    hf_token_key: str = "token"
    # Secret with AWS_* variables for s3:// sources (envFrom, optional); "" = none.
    s3_secret: str = ""
    # Bounded request queue per replica (WATTSERVE_MAX_QUEUE); 0 = the serving default.
    max_queue: int = 0
    # llama.cpp requests served first-token-fairly at once (WATTSERVE_PARALLEL); 0 = the
    # serving default (1, in turn). Admitted per replica: parallel + max queue.
    parallel: int = 0
    # Secret whose key holds the serving API keys (one per line); "" = the API is open.
    api_key_secret: str = ""
    api_key_key: str = "api-keys"
    # Who may reach the Ray head's dashboard (rayservice backend's NetworkPolicy): pods with
    # these labels, in namespaces with these labels (empty = any namespace).
    kuberay_pod_labels: tuple[tuple[str, str], ...] = DEFAULT_KUBERAY_POD_LABELS
    kuberay_namespace_labels: tuple[tuple[str, str], ...] = ()
    # The chart's serving NetworkPolicy guards Serve's port (policies add up, so the Ray
    # policy then must not open it to everyone): in these namespaces, or in every one when
    # the set is empty.
    serving_network_policy: bool = False
    serving_network_policy_namespaces: frozenset[str] = frozenset()
    # Accelerator resources the GPU serving image drives (a ROCm or Gaudi build of vLLM set
    # as the image adds amd.com/gpu or habana.ai/gaudi); other GPU pools are not used.
    gpu_resources: frozenset[str] = DEFAULT_GPU_RESOURCES

    def accelerator_problem(self, pool: ServingPool) -> str | None:
        """Why the GPU serving image cannot run on this pool's accelerators, else None."""
        acc = pool.spec.accelerator
        if acc is None or acc.resource_name in self.gpu_resources:
            return None
        return (f"spec.accelerator.resourceName: {acc.resource_name}: the GPU serving image "
                f"({self.image_gpu}) drives {', '.join(sorted(self.gpu_resources))} only; "
                f"set {ENV_IMAGE_GPU} to an image for these accelerators and add the "
                f"resource to {ENV_GPU_RESOURCES}")

    def image_for(self, gpu: bool) -> str:
        return self.image_gpu if gpu else self.image_cpu

    def ray_image_for(self, gpu: bool) -> str:
        """The Ray head/worker image of a RayService (the GPU image carries Ray already)."""
        return self.image_gpu if gpu else self.image_ray_cpu

    def pull_policy_for(self, gpu: bool) -> str:
        return self.pull_policy_gpu if gpu else self.pull_policy_cpu


def parse_labels(name: str, text: str) -> tuple[tuple[str, str], ...]:
    """``k=v,k2=v2`` as sorted (key, value) pairs; SettingsError naming ``name`` if bad."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or len(key) > 316 or not _LABEL_KEY.match(key) or len(value) > 63 \
                or not _LABEL_VALUE.match(value):
            raise SettingsError(f"{name}: must be key=value[,key=value...], got {item!r}")
        pairs[key] = value
    return tuple(sorted(pairs.items()))


def settings_from_env(env: Mapping[str, str]) -> RenderSettings:
    """Settings from ``WATTSERVE_*`` variables; unset or empty means the default."""

    def get(name: str, default: str) -> str:
        value = env.get(name, "").strip()
        return value or default

    def policy(name: str) -> str:
        value = get(name, "IfNotPresent")
        if value not in PULL_POLICIES:
            raise SettingsError(f"{name}: must be one of {sorted(PULL_POLICIES)}, got {value!r}")
        return value

    def count(name: str) -> int:
        raw = get(name, "0")
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}: must be an integer, got {raw!r}") from None
        if value < 0:
            raise SettingsError(f"{name}: must be >= 0, got {value}")
        return value

    max_queue = count(ENV_MAX_QUEUE)
    parallel = count(ENV_PARALLEL)
    guarded = _serving_policy(env.get(ENV_SERVING_NETWORK_POLICY, ""))
    import_path = get(ENV_IMPORT_PATH, DEFAULT_IMPORT_PATH)
    if ":" not in import_path:
        raise SettingsError(f"{ENV_IMPORT_PATH}: must be module:attribute, got {import_path!r}")
    return RenderSettings(
        image_cpu=get(ENV_IMAGE_CPU, DEFAULT_IMAGE_CPU),
        image_gpu=get(ENV_IMAGE_GPU, DEFAULT_IMAGE_GPU),
        image_ray_cpu=get(ENV_IMAGE_RAY_CPU, DEFAULT_IMAGE_RAY_CPU),
        pull_policy_cpu=policy(ENV_IMAGE_CPU_PULL),
        pull_policy_gpu=policy(ENV_IMAGE_GPU_PULL),
        import_path=import_path,
        ray_version=get(ENV_RAY_VERSION, DEFAULT_RAY_VERSION),
        model_cache_pvc=get(ENV_MODEL_CACHE_PVC, ""),
        hf_token_secret=get(ENV_HF_TOKEN_SECRET, ""),
        hf_token_key=get(ENV_HF_TOKEN_KEY, "token"),
        s3_secret=get(ENV_S3_SECRET, ""),
        max_queue=max_queue,
        parallel=parallel,
        api_key_secret=get(ENV_API_KEY_SECRET, ""),
        api_key_key=get(ENV_API_KEY_KEY, "api-keys"),
        kuberay_pod_labels=(parse_labels(ENV_KUBERAY_POD_LABELS, env[ENV_KUBERAY_POD_LABELS])
                            if env.get(ENV_KUBERAY_POD_LABELS, "").strip()
                            else DEFAULT_KUBERAY_POD_LABELS),
        serving_network_policy=guarded is not None,
        serving_network_policy_namespaces=guarded or frozenset(),
        kuberay_namespace_labels=parse_labels(ENV_KUBERAY_NAMESPACE_LABELS,
                                              env.get(ENV_KUBERAY_NAMESPACE_LABELS, "")),
        gpu_resources=_resources(ENV_GPU_RESOURCES, env.get(ENV_GPU_RESOURCES, "")),
    )


def _serving_policy(text: str) -> frozenset[str] | None:
    """Where the chart's serving NetworkPolicy is: None (nowhere: "", 0, false, no), every
    namespace (1, true, yes: an empty set) or a comma-separated list of namespaces."""
    value = text.strip()
    if value.lower() in ("", "0", "false", "no"):
        return None
    if value.lower() in ("1", "true", "yes"):
        return frozenset()
    names = frozenset(part.strip() for part in value.split(",") if part.strip())
    for item in sorted(names):
        if not is_dns_label(item):
            raise SettingsError(f"{ENV_SERVING_NETWORK_POLICY}: {item!r} is not a namespace "
                                "name (1 or true: every namespace, or a comma-separated list)")
    return names


def _resources(name: str, text: str) -> frozenset[str]:
    """Comma-separated extended resource names; the default when empty."""
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    for item in sorted(names):
        problem = extended_resource_problem(item)
        if problem is not None:
            raise SettingsError(f"{name}: {item!r}: {problem}")
    return names or DEFAULT_GPU_RESOURCES
