"""Desired vs actual children (pure): do the fields we own still hold our values?

The comparison is a subset match: every field of the rendered object must be present in the
live object with the same value; fields the API server or other controllers add (defaults,
status, clusterIP, annotations of other tools) are ignored. A mismatch means drift (a hand
edit) or a new desired state, and the child is server-side applied again.

Lists follow server-side apply's list types. An associative list (``listType=map``:
containers, env, volumes, volumeMounts, container and Service ports) merges per element, so
our apply leaves the elements of other managers in place (an injected sidecar, an env var a
webhook adds): each of ours must be there, matched by its key, and the others are ignored;
counting them as drift re-applied the child on every reconcile, forever. Any other list is
replaced whole by our apply (atomic): it must have our length and match element by element.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wattserve.api.status import ObjectMeta

# Associative lists of the objects we render, by field name: the keys of one element
# (Kubernetes API types' listMapKey; "protocol" defaults to TCP in the API server).
_LIST_MAP_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "containers": (("name",),),
    "initContainers": (("name",),),
    "env": (("name",),),
    "volumes": (("name",),),
    "volumeMounts": (("mountPath",),),
    "ports": (("containerPort", "protocol"), ("port", "protocol")),  # container / Service
}


_CONTAINER_PORTS = re.compile(r"[cC]ontainers\[\d+\]\.ports$")


def _element_key(element: Any, keys: tuple[str, ...]) -> tuple[Any, ...] | None:
    if not isinstance(element, Mapping) or keys[0] not in element:
        return None
    return tuple(element.get(k, "TCP") if k == "protocol" else element[k] for k in keys)


def _list_keys(path: str, desired: list[Any]) -> tuple[str, ...] | None:
    """The keys of an associative list all of whose desired elements carry them (an empty
    one owns no element: whatever others put there is theirs)."""
    field = path.rsplit(".", 1)[-1]
    if field == "ports" and not (path == "spec.ports" or _CONTAINER_PORTS.search(path)):
        return None  # an EndpointSlice's and a NetworkPolicy rule's ports are atomic
    for keys in _LIST_MAP_KEYS.get(field, ()):
        if all(_element_key(e, keys) is not None for e in desired):
            return keys
    return None


def _keyed_difference(desired: list[Any], actual: list[Any], keys: tuple[str, ...],
                      path: str) -> str | None:
    live = {_element_key(e, keys): e for e in actual}
    for index, want in enumerate(desired):
        have = live.get(_element_key(want, keys))
        if have is None:
            return f"{path}[{index}]"
        found = first_difference(want, have, f"{path}[{index}]", associative=True)
        if found is not None:
            return found
    return None


def first_difference(desired: Any, actual: Any, path: str = "",
                     associative: bool = True) -> str | None:
    """The path of the first field where ``actual`` does not match ``desired``, or None
    (``associative``: the object's lists have the built-in types' list types)."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return path or "."
        for key, value in desired.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                return where
            found = first_difference(value, actual[key], where, associative)
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(actual, list):
            return path
        keys = _list_keys(path, desired) if associative else None
        if keys is not None:
            return _keyed_difference(desired, actual, keys, path)
        if len(actual) != len(desired):
            return path
        for index, (want, have) in enumerate(zip(desired, actual, strict=True)):
            found = first_difference(want, have, f"{path}[{index}]", associative)
            if found is not None:
                return found
        return None
    if isinstance(desired, bool) or isinstance(actual, bool):
        return None if desired is actual else path
    if isinstance(desired, int | float) and isinstance(actual, int | float):
        return None if desired == actual else path
    return None if desired == actual else path


def matches(desired: Mapping[str, Any], actual: Mapping[str, Any] | None) -> bool:
    """Whether ``actual`` already carries every field of ``desired`` (metadata and spec)."""
    if actual is None:
        return False
    return first_difference({k: v for k, v in desired.items() if k != "status"}, actual,
                            associative=_builtin(str(desired.get("apiVersion", "")))) is None


def _builtin(api_version: str) -> bool:
    """A built-in kind, whose lists carry the API types' list types. A custom resource's
    lists are atomic unless its CRD says otherwise (we do not read CRDs): strict for them."""
    group = api_version.rpartition("/")[0]
    return group in ("", "apps", "policy", "autoscaling", "batch") or group.endswith(".k8s.io")


def foreign_controller(actual: Mapping[str, Any], owner_uid: str) -> bool:
    """A child whose controller is another object (e.g. a deleted and re-created
    ModelDeployment of the same name): it must be replaced, not patched."""
    for ref in ObjectMeta.from_body(actual).owner_references:
        if ref.get("controller") and ref.get("uid") != owner_uid:
            return True
    return False
