"""Status conditions (pure): Kubernetes API conventions for a ModelDeployment.

* ``lastTransitionTime`` changes only when a condition's ``status`` changes;
* every condition carries the ``observedGeneration`` it was computed for;
* conditions of types this module does not set (e.g. ``Scaled`` once the autoscaler owns
  it) are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from wattserve.api.conditions import ConditionType, Reason

Status = Literal["True", "False", "Unknown"]

PLACED: Final = ConditionType.PLACED
READY: Final = ConditionType.READY
DEGRADED: Final = ConditionType.DEGRADED
SCALED: Final = ConditionType.SCALED
ORDER: Final = (READY, PLACED, DEGRADED, SCALED)
# Where the Scaled=False/AutoscalerDisabled message points the user.
ENV_PROMETHEUS_URL: Final = "WATTSERVE_PROMETHEUS_URL"


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str = ""


def find(conditions: Iterable[Mapping[str, Any]], cond_type: str) -> Mapping[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == cond_type:
            return cond
    return None


def merge_conditions(
    existing: Sequence[Mapping[str, Any]],
    updates: Iterable[Condition],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The new condition list: ``updates`` applied over ``existing``.

    ``now`` (RFC 3339) becomes ``lastTransitionTime`` of conditions whose status changed or
    that are new; unchanged statuses keep their time even when reason or message change.
    """
    by_type: dict[str, dict[str, Any]] = {
        str(c["type"]): dict(c) for c in existing if isinstance(c, Mapping) and "type" in c
    }
    for update in updates:
        old = by_type.get(update.type)
        changed = old is None or old.get("status") != update.status
        by_type[update.type] = {
            "type": str(update.type),  # plain str: the enums serialize as their value
            "status": update.status,
            "reason": str(update.reason),
            "message": update.message,
            "observedGeneration": generation,
            "lastTransitionTime": now if changed or old is None
            else old.get("lastTransitionTime", now),
        }
    ordered = [by_type.pop(name) for name in ORDER if name in by_type]
    return ordered + [by_type[name] for name in sorted(by_type)]


def is_new_reason(existing: Sequence[Mapping[str, Any]], update: Condition) -> bool:
    """Whether ``update`` says something different from the current condition of its type
    (status, reason or message) — the test for posting an Event only once per reason."""
    old = find(existing, update.type)
    if old is None:
        return True
    return (old.get("status"), old.get("reason"), old.get("message")) != (
        update.status, update.reason, update.message)


def disabled_condition() -> Condition:
    """``Scaled=False/AutoscalerDisabled``: no Prometheus URL, so no autoscaler runs."""
    return Condition(
        SCALED, "False", Reason.AUTOSCALER_DISABLED,
        f"no Prometheus URL (--prometheus-url / {ENV_PROMETHEUS_URL}): the replica count "
        "stays at status.replicas.desired")
