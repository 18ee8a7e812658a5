"""Model sources become volumes, mounts and (for downloads) an init container.

=================  =====================================================================
``hf://org/name``  init container ``python -m wattserve_serving.fetch <source> /models``
                   into an emptyDir (or the shared cache PVC); HF_TOKEN from a Secret
``s3://b/key``     the same init-container pattern (AWS_* from an optional Secret)
``pvc://c/path``   PVC ``c`` mounted read-only at /models
``gguf:///path``   a file already in the serving image; nothing mounted
``oci://ref``      a model image (KServe modelcar style): an init container from that
                   image copies its /models into a bounded emptyDir (containerd 1.6 has
                   no image volumes); the serving container reads it at /models
=================  =====================================================================

The serving container's ``WATTSERVE_MODEL_PATH`` is ``/models/<what follows the scheme>``
for downloads and PVCs (the fetch module writes there), and the absolute path for gguf://.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from wattserve.api.errors import SpecError
from wattserve.api.parse import pvc_claim_problem
from wattserve.api.references import OCI_SCHEME, oci_reference_problem
from wattserve.render.security import container_security, k8s_literal
from wattserve.render.settings import MODELS_DIR, RenderSettings

VOLUME: Final = "models"
FETCH_CONTAINER: Final = "fetch-model"
FETCH_MODULE: Final = "wattserve_serving.fetch"
SOURCE_FIELD: Final = "spec.model.source"
COPY_CONTAINER: Final = "copy-model"
OCI_MODEL_DIR: Final = "/models"  # where a model image keeps its weights
COPY_TARGET: Final = "/mnt/models"  # the emptyDir, inside the copy container
_GIB: Final = 2**30


@dataclass(frozen=True)
class ModelStorage:
    """Where the weights come from inside the pod."""

    model_path: str
    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()  # on the serving container
    init_containers: tuple[dict[str, Any], ...] = ()
    downloads: bool = False


def _split(source: str) -> tuple[str, str]:
    scheme, _, rest = source.partition("://")
    if not rest:
        raise SpecError(SOURCE_FIELD, f"has no path after the scheme: {source!r}")
    return scheme, rest


def _download_volume(settings: RenderSettings) -> dict[str, Any]:
    if settings.model_cache_pvc:
        return {"name": VOLUME,
                "persistentVolumeClaim": {"claimName": settings.model_cache_pvc}}
    return {"name": VOLUME, "emptyDir": {}}


def _fetch_container(source: str, scheme: str, image: str, pull_policy: str,
                     settings: RenderSettings) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": FETCH_CONTAINER,
        "image": image,
        "imagePullPolicy": pull_policy,
        # An argv, no shell, and no $(VAR) expansion by Kubernetes either: the source is
        # pattern-checked already; escaping it is defence in depth (a secret env var named
        # in it would otherwise be expanded into the command and printed by the fetcher).
        "command": ["python", "-m", FETCH_MODULE, k8s_literal(source), MODELS_DIR],
        "volumeMounts": [{"name": VOLUME, "mountPath": MODELS_DIR}],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                      "limits": {"memory": "2Gi"}},
        # Not read-only: the Hub client keeps its own files under HOME.
        "securityContext": container_security(),
    }
    if scheme == "hf" and settings.hf_token_secret:
        container["env"] = [{
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": settings.hf_token_secret,
                                           "key": settings.hf_token_key,
                                           "optional": True}},
        }]
    if scheme == "s3" and settings.s3_secret:
        container["envFrom"] = [{"secretRef": {"name": settings.s3_secret, "optional": True}}]
    return container


def oci_volume_limit_gib(weights_bytes: float) -> int:
    """The emptyDir bound for a model image's weights: 25 % over their size, plus 1 GiB."""
    return max(1, math.ceil(weights_bytes * 1.25 / _GIB) + 1)


def _oci_storage(source: str, pull_policy: str, weights_bytes: float) -> ModelStorage:
    problem = oci_reference_problem(source)
    if problem is not None:
        raise SpecError(SOURCE_FIELD, problem)
    copy = {
        "name": COPY_CONTAINER,
        "image": source.removeprefix(OCI_SCHEME),
        "imagePullPolicy": pull_policy,
        # An argv, no shell: nothing of the source string is expanded or interpreted.
        "command": ["cp", "-R", "--", f"{OCI_MODEL_DIR}/.", COPY_TARGET],
        "volumeMounts": [{"name": VOLUME, "mountPath": COPY_TARGET}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
        "securityContext": container_security(read_only_root=True),
    }
    limit = oci_volume_limit_gib(weights_bytes)
    return ModelStorage(
        model_path=MODELS_DIR,
        volumes=({"name": VOLUME, "emptyDir": {"sizeLimit": f"{limit}Gi"}},),
        mounts=({"name": VOLUME, "mountPath": MODELS_DIR, "readOnly": True},),
        init_containers=(copy,),
    )


def model_storage(source: str, image: str, pull_policy: str,
                  settings: RenderSettings, weights_bytes: float = 0.0) -> ModelStorage:
    """Volumes, mounts and init containers for ``source``; SpecError if it is malformed.

    ``weights_bytes`` (the planner's estimate) bounds the emptyDir of an oci:// source.
    """
    if source.startswith(OCI_SCHEME):
        return _oci_storage(source, pull_policy, weights_bytes)
    scheme, rest = _split(source)
    if scheme == "gguf":
        path = "/" + rest.lstrip("/")
        if path == "/":
            raise SpecError(SOURCE_FIELD, f"gguf:// needs an absolute file path: {source!r}")
        return ModelStorage(model_path=path)
    if scheme == "pvc":
        claim, _, sub = rest.partition("/")
        problem = pvc_claim_problem(claim)
        if problem is not None:
            raise SpecError(SOURCE_FIELD, problem)
        sub = sub.strip("/")
        return ModelStorage(
            model_path=f"{MODELS_DIR}/{sub}" if sub else MODELS_DIR,
            volumes=({"name": VOLUME,
                      "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},),
            mounts=({"name": VOLUME, "mountPath": MODELS_DIR, "readOnly": True},),
        )
    if scheme in ("hf", "s3"):
        sub = rest.strip("/")
        if not sub:
            raise SpecError(SOURCE_FIELD, f"{scheme}:// needs a repository or object path")
        return ModelStorage(
            model_path=f"{MODELS_DIR}/{sub}",
            volumes=(_download_volume(settings),),
            mounts=({"name": VOLUME, "mountPath": MODELS_DIR, "readOnly": True},),
            init_containers=(_fetch_container(source, scheme, image, pull_policy, settings),),
            downloads=True,
        )
    raise SpecError(SOURCE_FIELD, f"unsupported scheme {scheme!r} (hf, s3, pvc, gguf or oci)")
