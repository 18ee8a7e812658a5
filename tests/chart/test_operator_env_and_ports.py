"""Values the schema cannot judge alone: the operator's two ports apart, and extraEnv adding
variables without shadowing the chart's own (the API server accepts a repeated env name with
a warning and the later entry silently wins)."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import RenderError, by_kind, render


def _env(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for deploy in by_kind(docs, "Deployment"):
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        if container["name"] == "operator":
            env: list[dict[str, Any]] = container["env"]
            return env
    raise AssertionError("no operator Deployment rendered")


def test_the_same_health_and_metrics_port_is_refused_naming_both_values() -> None:
    with pytest.raises(RenderError) as err:
        render({"operator": {"healthPort": 9090, "metricsPort": 9090}})
    msg = str(err.value)
    assert "operator.healthPort" in msg and "operator.metricsPort" in msg and "9090" in msg


def test_extra_env_adds_variables_after_the_charts_own() -> None:
    env = _env(render({"operator": {"extraEnv": [
        {"name": "WATTSERVE_RESYNC_SECONDS", "value": "120"},
        {"name": "TZ", "value": "UTC"}]}}))
    names = [e["name"] for e in env]
    assert names[-2:] == ["WATTSERVE_RESYNC_SECONDS", "TZ"]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("name", "owner"), [
    ("WATTSERVE_PROMETHEUS_URL", "prometheus.url"),
    ("WATTSERVE_METRICS_PORT", "operator.metricsPort"),
    ("HOME", "root filesystem is read-only"),
    # set by the chart only when the activator is on: still refused when it is off
    ("WATTSERVE_ACTIVATOR_SERVICE", "activator.enabled"),
    ("WATTSERVE_LEADER_ELECTION_LEASE", "operator.leaderElection.enabled"),
    ("WATTSERVE_LEADER_ELECTION_LEASE_SECONDS", "leaseDurationSeconds"),
])
def test_extra_env_naming_a_chart_variable_is_refused_naming_the_value_to_set(
        name: str, owner: str) -> None:
    with pytest.raises(RenderError) as err:
        render({"operator": {"extraEnv": [{"name": "TZ", "value": "UTC"},
                                          {"name": name, "value": "x"}]}})
    msg = str(err.value)
    assert f"operator.extraEnv[1].name: {name}" in msg and owner in msg, msg


def test_extra_env_giving_a_name_twice_is_refused_naming_both_entries() -> None:
    with pytest.raises(RenderError) as err:
        render({"operator": {"extraEnv": [{"name": "TZ", "value": "UTC"},
                                          {"name": "LANG", "value": "C"},
                                          {"name": "TZ", "value": "CET"}]}})
    msg = str(err.value)
    assert "operator.extraEnv[2].name: TZ" in msg and "operator.extraEnv[0]" in msg, msg
