"""Desired vs actual children (pure): do the fields we own still hold our values?

The comparison is a subset match: every field of the rendered object must be present in the
live object with the same value; fields the API server or other controllers add (defaults,
status, clusterIP, annotations of other tools) are ignored. Lists must have the same length
and match element by element. A mismatch means drift (a hand edit) or a new desired state,
and the child is server-side applied again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattserve.api.status import ObjectMeta


def first_difference(desired: Any, actual: Any, path: str = "") -> str | None:
    """The path of the first field where ``actual`` does not match ``desired``, or None."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return path or "."
        for key, value in desired.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                return where
            found = first_difference(value, actual[key], where)
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return path
        for index, (want, have) in enumerate(zip(desired, actual, strict=True)):
            found = first_difference(want, have, f"{path}[{index}]")
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
    return first_difference({k: v for k, v in desired.items() if k != "status"}, actual) is None


def foreign_controller(actual: Mapping[str, Any], owner_uid: str) -> bool:
    """A child whose controller is another object (e.g. a deleted and re-created
    ModelDeployment of the same name): it must be replaced, not patched."""
    for ref in ObjectMeta.from_body(actual).owner_references:
        if ref.get("controller") and ref.get("uid") != owner_uid:
            return True
    return False
