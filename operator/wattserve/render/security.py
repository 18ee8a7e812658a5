"""Pod and container security settings that pass the "restricted" Pod Security Standard.

One place for every renderer (Deployment, RayService, the fetch init container): the
restricted profile needs, on every container including init containers, no privilege
escalation, all capabilities dropped, a non-root user and a RuntimeDefault seccomp profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SERVING_UID: Final = 10001  # the serving images' user (serving/Dockerfile.*)
TMP_VOLUME: Final = "tmp"
TMP_LIMIT: Final = "1Gi"


def container_security(read_only_root: bool = False) -> dict[str, Any]:
    """A container securityContext the restricted profile admits."""
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if read_only_root:
        ctx["readOnlyRootFilesystem"] = True
    return ctx


def k8s_literal(text: str) -> str:
    """``text`` as a command/args/env value Kubernetes passes through unchanged: every ``$``
    doubled, so no ``$(VAR)`` in it is ever expanded (``$$`` reaches the process as ``$``)."""
    return text.replace("$", "$$")


def pod_security(uid: int = SERVING_UID) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def harden_container(container: Mapping[str, Any],
                     extra_env: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """``container`` with the restricted securityContext merged in (its own keys kept
    unless they would fail the profile) and ``extra_env`` appended."""
    out = dict(container)
    ctx = dict(out.get("securityContext") or {})
    for key, value in container_security().items():
        if key == "capabilities":
            caps = dict(ctx.get("capabilities") or {})
            caps["drop"] = ["ALL"]
            caps.pop("add", None)
            ctx["capabilities"] = caps
        elif key in ("allowPrivilegeEscalation", "runAsNonRoot"):
            ctx[key] = value
        else:
            ctx.setdefault(key, value)
    ctx.pop("privileged", None)
    out["securityContext"] = ctx
    if extra_env:
        names = {e.get("name") for e in out.get("env") or ()}
        out["env"] = [*(out.get("env") or ()), *(e for e in extra_env if e["name"] not in names)]
    return out


def bounded_volume(volume: Mapping[str, Any], size_limit: str) -> dict[str, Any]:
    """An emptyDir volume gets ``size_limit`` unless it has one; other volumes unchanged."""
    out = dict(volume)
    empty = out.get("emptyDir")
    if isinstance(empty, Mapping) and "sizeLimit" not in empty:
        out["emptyDir"] = {**empty, "sizeLimit": size_limit}
    return out


def tmp_volume() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_LIMIT}}


def tmp_mount() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}
