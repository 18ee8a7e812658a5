"""JSON merge patches (RFC 7386) between two plain-data documents (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``old`` into ``new`` for the keys of both.

    Keys missing from ``new`` are removed (null) only below keys present in ``new``: a
    top-level key absent from ``new`` is left alone (someone else owns it, e.g. the
    autoscaler's ``status.scaler``). Lists are replaced whole.
    """
    return _diff(old, new, remove_missing=False)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], *,
          remove_missing: bool) -> dict[str, Any]:
    """Keys of ``new`` that differ from ``old``; below the top, keys gone from ``new`` are
    removed (null)."""
    out: dict[str, Any] = {key: None for key in old if key not in new} if remove_missing else {}
    for key, value in new.items():
        before = old.get(key)
        if value is None and before is None:
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = _diff(before, value, remove_missing=True)
            if sub:
                out[key] = sub
        elif value != before or key not in old:
            out[key] = value
    return out


def apply_merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` with the merge patch applied (RFC 7386: None removes a key; mappings merge
    key by key; anything else, lists included, replaces)."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping):
            before = out.get(key)
            out[key] = apply_merge_patch(before if isinstance(before, Mapping) else {}, value)
        else:
            out[key] = value
    return out


def compose(first: Mapping[str, Any], then: Mapping[str, Any]) -> dict[str, Any]:
    """One merge patch that does ``first`` and then ``then`` (None, a removal, is kept)."""
    out = dict(first)
    for key, value in then.items():
        before = out.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            out[key] = compose(before, value)
        else:
            out[key] = value
    return out
