"""Condition transitions: lastTransitionTime moves only when status changes."""

from __future__ import annotations

from wattserve.reconcile.conditions import Condition, is_new_reason, merge_conditions

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def test_new_condition_gets_now_and_the_generation() -> None:
    (c,) = merge_conditions([], [Condition("Placed", "True", "Placed", "on cpu")], 3, T0)
    assert c == {"type": "Placed", "status": "True", "reason": "Placed", "message": "on cpu",
                 "observedGeneration": 3, "lastTransitionTime": T0}


def test_same_status_keeps_transition_time_even_if_reason_and_message_change() -> None:
    first = merge_conditions([], [Condition("Ready", "False", "ReplicasNotReady", "0/2")], 1, T0)
    second = merge_conditions(first, [Condition("Ready", "False", "Other", "1/2")], 2, T1)
    assert second[0]["lastTransitionTime"] == T0
    assert (second[0]["reason"], second[0]["message"]) == ("Other", "1/2")
    assert second[0]["observedGeneration"] == 2


def test_status_change_moves_transition_time() -> None:
    first = merge_conditions([], [Condition("Ready", "False", "ReplicasNotReady", "0/2")], 1, T0)
    second = merge_conditions(first, [Condition("Ready", "True", "Available", "2/2")], 1, T1)
    assert second[0]["lastTransitionTime"] == T1


def test_conditions_not_updated_are_kept_untouched() -> None:
    scaled = {"type": "Scaled", "status": "True", "reason": "ScaledUp", "message": "x",
              "observedGeneration": 1, "lastTransitionTime": T0}
    out = merge_conditions([scaled], [Condition("Ready", "True", "Available", "")], 2, T1)
    assert scaled in out


def test_conditions_are_in_a_stable_order() -> None:
    out = merge_conditions([], [Condition("Scaled", "Unknown", "AwaitingMetrics"),
                                Condition("Degraded", "False", "AsExpected"),
                                Condition("Placed", "True", "Placed"),
                                Condition("Ready", "False", "ReplicasNotReady")], 1, T0)
    assert [c["type"] for c in out] == ["Ready", "Placed", "Degraded", "Scaled"]


def test_is_new_reason_detects_only_real_changes() -> None:
    existing = merge_conditions([], [Condition("Placed", "False", "OverBudget", "m")], 1, T0)
    assert not is_new_reason(existing, Condition("Placed", "False", "OverBudget", "m"))
    assert is_new_reason(existing, Condition("Placed", "False", "NoFeasiblePool", "m"))
    assert is_new_reason(existing, Condition("Placed", "False", "OverBudget", "other"))
    assert is_new_reason([], Condition("Placed", "False", "OverBudget", "m"))
