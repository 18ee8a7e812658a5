"""Placed=False reasons come from the plan's code, not from its prose; reasons serialize
as plain strings."""

from __future__ import annotations

import dataclasses
import json

import yaml
from wattserve.api import parse_model_deployment
from wattserve.api.conditions import PLAN_FAILURES, Reason
from wattserve.planning import plan
from wattserve.reconcile.decide import Observed, decide, failure_reason
from wattserve.render import RenderSettings

from tests.unit.factories import example_pools
from tests.unit.test_render_support import example_md_doc


def test_plans_carry_the_code_of_the_constraint_that_failed() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    assert plan(parse_model_deployment(doc), example_pools()).code is Reason.PLACED
    assert plan(parse_model_deployment(doc), []).code is Reason.NO_SERVING_POOLS
    doc["spec"]["budget"] = {"maxUSDPerHour": "0.0001"}
    assert plan(parse_model_deployment(doc), example_pools()).code is Reason.OVER_BUDGET
    doc["spec"]["placement"] = {"pool": "nope"}
    assert plan(parse_model_deployment(doc), example_pools()).code is Reason.PINNED_POOL_NOT_FOUND


def test_the_reason_does_not_depend_on_the_wording() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    p = plan(parse_model_deployment(doc), [])
    reworded = dataclasses.replace(p, reason="pinned pool 'x' does not exist (reworded)")
    assert failure_reason(reworded) is Reason.NO_SERVING_POOLS
    assert all(code in set(Reason) for code in PLAN_FAILURES)


def test_status_and_events_hold_plain_strings() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["budget"] = {"maxUSDPerHour": "0.0001"}
    out = decide(Observed(doc, example_pools()), RenderSettings(), "2026-01-01T00:00:00Z")
    assert out.status_patch is not None
    conditions = out.status_patch["conditions"]
    assert all(type(c["reason"]) is str and type(c["type"]) is str for c in conditions)
    yaml.safe_dump(dict(out.status_patch))  # a StrEnum member would not represent here
    assert json.loads(json.dumps(dict(out.status_patch)))["conditions"][0]["type"] == "Ready"
