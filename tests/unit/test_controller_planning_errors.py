"""A planning error becomes a Placed=False condition and one Warning event, not a retry loop."""

from __future__ import annotations

from typing import Any

import pytest
from wattserve.reconcile import decide as decide_module
from wattserve.reconcile.decide import Observed, decide
from wattserve.render import RenderSettings

from tests.unit.factories import example_pools
from tests.unit.test_render_support import example_md_doc

NOW = "2026-11-29T00:00:00Z"


def _run(body: dict[str, Any]) -> Any:
    return decide(Observed(body=body, pools=example_pools(), children={}, pods=[]),
                  RenderSettings(), NOW)


@pytest.mark.parametrize("error", [OverflowError("int too large to convert to float"),
                                   ZeroDivisionError("float division by zero"),
                                   RecursionError("maximum recursion depth exceeded")])
def test_planner_crash_is_reported_on_the_object(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def broken(*_: Any, **__: Any) -> Any:  # a planner bug, as the 309-digit rps caused
        raise error

    monkeypatch.setattr(decide_module, "plan", broken)
    out = _run(example_md_doc("smollm2-135m.yaml"))  # before: the exception escaped
    assert out.result == "invalid" and out.apply == ()
    placed = next(c for c in out.status_patch["conditions"] if c["type"] == "Placed")
    assert placed["status"] == "False" and placed["reason"] == "PlanningFailed"
    assert type(error).__name__ in placed["message"]
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "PlanningFailed")]


def test_the_same_failure_is_announced_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise OverflowError("boom")

    monkeypatch.setattr(decide_module, "plan", broken)
    body = example_md_doc("smollm2-135m.yaml")
    first = _run(body)
    body["status"] = dict(first.status_patch)
    again = _run(body)
    assert again.events == ()
    assert again.status_patch is None or "conditions" not in again.status_patch or all(
        c["reason"] == "PlanningFailed" for c in again.status_patch["conditions"]
        if c["type"] == "Placed")
