"""Scale to zero's memory, stored on purpose (pure).

What the scale-to-zero logic needs from one tick or reconcile to the next, and across
operator restarts, is its *idle memory*: when the model went idle (``since``), when it went
to zero (``scaledToZeroAt``), when a wake-up was asked and done (``wakeRequestedAt``,
``wokenAt``), the learned cold start (``coldStartSeconds``, ``coldStartLearned``), the
request rate while in use (``activeRate``) and the recent idle gaps (``gaps``, seconds from
going idle to the next request, the last 24) that the idle timeout is learned from. It is
stored in the ``wattserve.dev/idle-state`` annotation (JSON, the same field names), written
by the reconciler with the scaler-state annotation, and only when it changes:
``activeRate``, which moves with every tick under load, is stored only when it moves by
more than ``ACTIVE_RATE_SHARE`` of the stored value (the average goes on from the stored
value), so an idle or steady model costs no write per tick; ``gaps`` moves once per idle
spell.

``status.idle`` reports the same fields for users and is never read back, with one
exception, the migration: an object written by an operator older than the annotation has
none, and its ``status.idle`` seeds the memory once (the first reconcile stores it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from wattserve.api.patching import apply_merge_patch, compose
from wattserve.api.status import ModelDeploymentStatus, ObjectMeta, mapping

ANNOTATION_IDLE_STATE: Final = "wattserve.dev/idle-state"
MEMORY_KEYS: Final = ("since", "scaledToZeroAt", "wakeRequestedAt", "wokenAt",
                      "coldStartSeconds", "coldStartLearned", "activeRate", "gaps")
# activeRate (an EWMA, weight 0.3 per tick) is stored when it moves by more than 1.5 %:
# one tick moves it by 0.3 x its distance from the rate, so a steady rate is stored to
# within 5 % (then writes stop), and a moving one is followed within one tick.
ACTIVE_RATE_SHARE: Final = 0.015


def _memory_only(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: raw[k] for k in MEMORY_KEYS if raw.get(k) is not None}


def stored_memory(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The memory as stored in the annotation; None when there is none (or unreadable)."""
    raw = ObjectMeta.from_body(body).annotations.get(ANNOTATION_IDLE_STATE)
    if not isinstance(raw, str):
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return _memory_only(parsed) if isinstance(parsed, dict) else None


def idle_memory(body: Mapping[str, Any]) -> dict[str, Any]:
    """The idle memory: the annotation; without one, ``status.idle`` (migration, once)."""
    stored = stored_memory(body)
    if stored is not None:
        return stored
    return _memory_only(ModelDeploymentStatus.from_body(body).idle)


def remember(memory: Mapping[str, Any], patch: Mapping[str, Any] | None) -> dict[str, Any]:
    """``memory`` after a ``status.idle`` merge patch (its memory fields; None removes)."""
    if not patch:
        return dict(memory)
    return _memory_only(apply_merge_patch(
        memory, {k: v for k, v in patch.items() if k in MEMORY_KEYS}))


def encode(memory: Mapping[str, Any]) -> str:
    return json.dumps(dict(memory), separators=(",", ":"), sort_keys=True)


def with_memory(body: Mapping[str, Any], memory: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` as it reads once ``memory`` is stored (a view; nothing is written)."""
    annotations = {**ObjectMeta.from_body(body).annotations,
                   ANNOTATION_IDLE_STATE: encode(memory)}
    return {**body, "metadata": {**mapping(body.get("metadata")), "annotations": annotations}}


def _rate_moved(old: Any, new: Any) -> bool:
    if not isinstance(old, (int, float)) or not isinstance(new, (int, float)):
        return (old is None) != (new is None) or old != new
    if not (math.isfinite(old) and math.isfinite(new)):
        return old != new
    return abs(new - old) > ACTIVE_RATE_SHARE * abs(old) if old else new != old


def moved(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` differs from the stored ``old`` enough to be written."""
    def rest(m: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if k != "activeRate"}
    return rest(old) != rest(new) or _rate_moved(old.get("activeRate"), new.get("activeRate"))


def memory_annotation(body: Mapping[str, Any], memory: Mapping[str, Any]) -> dict[str, str]:
    """The annotation to write so that ``memory`` is stored ({} when it is already, within
    the ``activeRate`` share, or when there is nothing to remember and nothing stored)."""
    stored = stored_memory(body)
    if stored is None:
        return {ANNOTATION_IDLE_STATE: encode(memory)} if memory else {}
    return {ANNOTATION_IDLE_STATE: encode(memory)} if moved(stored, memory) else {}


def status_repair(memory: Mapping[str, Any], idle_status: Mapping[str, Any]) -> dict[str, Any]:
    """The ``status.idle`` fields that no longer say what the memory holds (edited or cleared
    by hand): written again for users. ``activeRate`` is left as reported (the stored one
    may lag it by the share)."""
    return {k: v for k, v in memory.items()
            if k != "activeRate" and idle_status.get(k) != v}


def remembered(before: Mapping[str, Any], status_patch: Mapping[str, Any] | None,
               memory: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, dict[str, str]]:
    """A reconcile's status patch and the annotation to store once ``memory`` is what it
    remembers (``before``: the object as read): ``status.idle`` fields that a hand edit made
    say otherwise are written again; the annotation only when the memory changed."""
    after = apply_merge_patch(ModelDeploymentStatus.from_body(before).raw,
                              status_patch or {}).get("idle")
    repair = status_repair(memory, after if isinstance(after, Mapping) else {})
    patch = compose(status_patch or {}, {"idle": repair}) if repair else status_patch
    return patch, memory_annotation(before, memory)
