"""The autoscaler's operator glue (pure): settings, one tick's status, conditions, events."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from wattserve.api import parse_model_deployment
from wattserve.autoscale import Observation, ScalerState
from wattserve.autoscale.promql import EnergySource
from wattserve.controller import autoscaling as glue
from wattserve.controller import metrics
from wattserve.controller.config import env_defaults
from wattserve.planning import plan
from wattserve.reconcile import scaling
from wattserve.render import SettingsError

from tests.unit.factories import example_pools
from tests.unit.test_render_support import example_md_doc

NOW = 1_000_000.0
ISO = "2026-11-28T12:00:00Z"


def placed_body(desired: int = 2, ready: int | None = None, **scaling: Any) -> dict[str, Any]:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["metadata"]["generation"] = 1
    doc["spec"]["scaling"].update(scaling)
    doc["status"] = {
        "placement": {"pool": "cpu-general"},
        "replicas": {"desired": desired, "ready": desired if ready is None else ready},
        "conditions": [{"type": "Placed", "status": "True", "reason": "Placed"},
                       {"type": "Scaled", "status": "Unknown", "reason": "AwaitingMetrics"}],
        "current": {"source": "predicted", "p95LatencyMs": "561"},
    }
    return doc


def run_tick(body: dict[str, Any], obs: Observation | None, state: ScalerState | None = None,
             now: float = NOW) -> scaling.TickOutcome:
    md = parse_model_deployment(body)
    p = plan(md, example_pools())
    cand = scaling.candidate_for(p.candidates, p.chosen, "cpu-general")
    assert cand is not None
    return glue.tick(md, body, cand, state, obs, now, ISO, 60.0, "unreachable: refused")


def busy(rate: float = 5.0, p95: float = 4.0) -> Observation:
    return Observation(request_rate=rate, p95_latency_s=p95, p95_ttft_s=0.5,
                       prompt_tps=rate * 64, generation_tps=rate * 64, in_flight=2.0,
                       queued=4.0, joules_per_token=0.5, energy_source="wattserve")


def idle() -> Observation:
    return Observation(request_rate=0.0, prompt_tps=0.0, generation_tps=0.0, in_flight=0.0,
                       queued=0.0, energy_source="wattserve")


def applied(body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out["status"].get(key), dict):
            out["status"][key] = {**out["status"][key], **value}
        else:
            out["status"][key] = value
    return out


def scaled(patch: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in patch["conditions"] if c["type"] == "Scaled")


# ---- settings ------------------------------------------------------------------------------

def test_settings_defaults_and_env() -> None:
    s = glue.settings_from_env({})
    assert not s.enabled and s.interval_s == 15 and s.energy_source == "auto"
    assert s.templates.window == "1m" and s.window_s == 60
    assert s.templates.energy_preference == (EnergySource.KEPLER, EnergySource.DCGM,
                                             EnergySource.WATTSERVE)
    s = glue.settings_from_env({
        "WATTSERVE_PROMETHEUS_URL": " http://prom:9090 ",
        "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS": "5", "WATTSERVE_ENERGY_SOURCE": "DCGM",
        "WATTSERVE_PROMQL_WINDOW": "30s",
        "WATTSERVE_PROMQL_REQUEST_RATE": 'sum(rate(my_requests{{ns="{namespace}"}}[{window}]))'})
    assert s.enabled and s.prometheus_url == "http://prom:9090" and s.interval_s == 5
    assert s.templates.energy_preference == (EnergySource.DCGM,)
    assert s.window_s == 30
    assert s.templates.request_rate.startswith("sum(rate(my_requests")
    assert isinstance(env_defaults({})["autoscale"], glue.AutoscaleSettings)


@pytest.mark.parametrize(("env", "named"), [
    ({"WATTSERVE_ENERGY_SOURCE": "rapl"}, "WATTSERVE_ENERGY_SOURCE"),
    ({"WATTSERVE_AUTOSCALE_INTERVAL_SECONDS": "0"}, "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS"),
    ({"WATTSERVE_AUTOSCALE_INTERVAL_SECONDS": "soon"}, "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS"),
    ({"WATTSERVE_PROMQL_WINDOW": "1 minute"}, "WATTSERVE_PROMQL_WINDOW"),
    ({"WATTSERVE_PROMQL_P95_LATENCY": "x{unknown}"}, "WATTSERVE_PROMQL_"),
    ({"WATTSERVE_PROMQL_QUEUED": 'sum(q{a="b"})'}, "WATTSERVE_PROMQL_"),
])
def test_bad_settings_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        glue.settings_from_env(env)


# ---- one tick ------------------------------------------------------------------------------

def test_load_scales_up_with_last_scale_event_and_observed_figures() -> None:
    out = run_tick(placed_body(desired=2), busy())
    assert out.current_replicas == 2
    assert out.desired_replicas is not None and out.desired_replicas > 2
    assert out.last_scale == {"time": ISO, "from": 2, "to": out.desired_replicas,
                              "reason": out.decision.reason, "message": out.decision.message}
    assert "req/s" in out.last_scale["message"]
    assert [(e.type, e.reason) for e in out.events] == [("Normal", "Scaled")]
    cond = scaled(out.status_patch)
    assert (cond["status"], cond["reason"]) == ("True", "ScaledUp")
    assert cond["lastTransitionTime"] == ISO and cond["observedGeneration"] == 1
    observed = out.status_patch["observed"]
    assert observed["requestRate"] == 5 and observed["p95LatencyMs"] == 4000
    assert observed["p95TtftMs"] == 500 and observed["joulesPerToken"] == 0.5
    assert observed["tokensPerSecond"] == 640 and observed["energySource"] == "wattserve"
    assert observed["replicas"] == out.desired_replicas and observed["time"] == ISO
    per_replica = observed["usdPerHour"] / out.desired_replicas
    assert per_replica == pytest.approx(0.2016, rel=0.01)  # 4 of 16 vCPUs of $0.8064/h
    assert observed["usdPerMillionTokens"] == pytest.approx(
        observed["usdPerHour"] / (320 * 3600) * 1e6, rel=1e-3)
    assert observed["gramsCO2PerMillionTokens"] == pytest.approx(0.5 * 1e6 / 3.6e6 * 481,
                                                                 rel=1e-3)
    assert observed["calibratedCapacityRpsPerReplica"] > 0
    current = out.status_patch["current"]
    assert current["source"] == "observed" and current["p95LatencyMs"] == "4000"
    assert current["joulesPerToken"] == "0.5"
    assert out.status_patch["scaler"]["replicas"] == out.desired_replicas
    assert ScalerState.from_dict(out.status_patch["scaler"]) == out.state


def test_no_load_at_the_minimum_is_steady_without_events() -> None:
    out = run_tick(placed_body(desired=1), idle())
    assert out.desired_replicas is None and out.last_scale is None and not out.events
    cond = scaled(out.status_patch)
    assert (cond["status"], cond["reason"]) == ("True", "Steady")
    assert out.status_patch["observed"]["requestRate"] == 0
    assert out.status_patch["observed"]["p95LatencyMs"] is None  # no data: field removed
    assert "current" not in out.status_patch  # nothing observed yet: stays predicted


def test_scale_down_waits_for_the_delay_then_reports_scaled_down() -> None:
    body = placed_body(desired=3, scaleDownDelaySeconds=30)
    body["metadata"]["annotations"] = scaling.state_annotation(
        ScalerState(replicas=3, recommendations=((NOW - 1, 3),)))
    first = run_tick(body, idle())  # the state comes from the stored annotation (a restart)
    assert first.desired_replicas is None and first.decision.reason == "StabilizingScaleDown"
    body = applied(body, first.status_patch)
    later = run_tick(body, idle(), first.state, now=NOW + 31)
    assert later.desired_replicas == 1 and later.last_scale is not None
    assert scaled(later.status_patch)["reason"] == "ScaledDown"


def test_metrics_outage_holds_replicas_unknown_and_warns_once() -> None:
    body = placed_body(desired=3)
    first = run_tick(body, None)
    assert first.desired_replicas is None and first.decision.desired_replicas == 3
    cond = scaled(first.status_patch)
    assert (cond["status"], cond["reason"]) == ("Unknown", "MetricsUnavailable")
    assert "unreachable: refused" in cond["message"]
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "MetricsUnavailable")]
    assert "observed" not in first.status_patch and "current" not in first.status_patch
    body = applied(body, first.status_patch)
    # The outage started: the operator stores the policy's memory (controller/autoscaler.py).
    body["metadata"]["annotations"] = scaling.state_annotation(first.state)
    # Same outage, later ticks (also after an operator restart: the stored state).
    for state in (first.state, None):
        again = run_tick(body, None, state, now=NOW + 15)
        assert not again.events and again.desired_replicas is None
        assert again.state.outage_since == NOW
    back = run_tick(body, idle(), first.state, now=NOW + 30)
    assert back.state.outage_since is None and scaled(back.status_patch)["status"] == "True"
    # The next outage warns again.
    body = applied(body, back.status_patch)
    assert [e.reason for e in run_tick(body, None, back.state, now=NOW + 45).events] == [
        "MetricsUnavailable"]


def test_slo_conflict_with_max_replicas_is_a_condition_and_one_warning() -> None:
    body = placed_body(desired=2, maxReplicas=2)
    out = run_tick(body, busy(rate=50.0))
    assert out.decision.conflict
    cond = scaled(out.status_patch)
    assert (cond["status"], cond["reason"]) == ("True", "SLOConflictsWithMaxReplicas")
    assert "maxReplicas=2" in cond["message"]
    assert ("Warning", "SLOConflictsWithMaxReplicas") in [(e.type, e.reason)
                                                          for e in out.events]
    body = applied(body, out.status_patch)
    again = run_tick(body, busy(rate=50.0), out.state, now=NOW + 15)
    assert not [e for e in again.events if e.type == "Warning"]


def test_min_replicas_zero_counts_down_the_idle_timeout_before_scaling_to_zero() -> None:
    # (Scale to zero itself: tests/unit/test_idle_scale_to_zero.py.)
    out = run_tick(placed_body(desired=1, minReplicas=0), idle())
    assert out.decision.desired_replicas == 1 and out.desired_replicas is None
    cond = scaled(out.status_patch)
    assert cond["reason"] == "Steady"
    assert "minReplicas 0: idle for 60s of the" in cond["message"]
    assert "ScaleToZeroNeedsActivation" in cond["message"]


def test_current_keeps_observed_values_when_a_field_has_no_data() -> None:
    old = {"source": "observed", "p95LatencyMs": "900", "joulesPerToken": "0.4"}
    out = scaling.current_status(old, {"p95LatencyMs": None, "joulesPerToken": None,
                                    "usdPerHour": 0.1})
    assert out == {"source": "observed", "p95LatencyMs": "900", "joulesPerToken": "0.4",
                   "usdPerHour": "0.1"}
    assert scaling.current_status({"source": "predicted"}, {"p95LatencyMs": None}) is None


def test_stored_state_round_trip_and_garbage() -> None:
    body = placed_body()
    state = ScalerState(replicas=4, speed=1.5, outage_since=12.0)
    body["metadata"]["annotations"] = scaling.state_annotation(state)
    assert scaling.saved_state(body, 2) == state
    body["metadata"]["annotations"] = {scaling.ANNOTATION_SCALER_STATE: '{"replicas": "many"}'}
    assert scaling.saved_state(body, 2) == ScalerState(replicas=2)
    body["metadata"]["annotations"] = {scaling.ANNOTATION_SCALER_STATE: "not json"}
    assert scaling.saved_state(body, 2) == ScalerState(replicas=2)


def test_the_state_in_status_is_a_report_never_read_back() -> None:
    body = placed_body()
    body["status"]["scaler"] = ScalerState(replicas=4, speed=1.5).to_dict()
    assert scaling.saved_state(body, 2) == ScalerState(replicas=2)


def test_unchanged_condition_is_not_rewritten() -> None:
    body = placed_body()
    update = scaling.disabled_condition()
    conditions = scaling.conditions_patch(body, update, ISO)
    assert conditions is not None
    assert [c["type"] for c in conditions] == ["Placed", "Scaled"]
    assert conditions[1]["reason"] == "AutoscalerDisabled" and conditions[1]["status"] == "False"
    body["status"]["conditions"] = conditions
    assert scaling.conditions_patch(body, update, ISO) is None


def test_placed_pool_and_candidate_for() -> None:
    body = placed_body()
    assert scaling.placed_pool(body) == "cpu-general"
    body["status"]["conditions"][0]["status"] = "False"
    assert scaling.placed_pool(body) is None
    md = parse_model_deployment(placed_body())
    p = plan(md, example_pools())
    assert scaling.candidate_for(p.candidates, p.chosen, "no-such-pool") is None


def test_operator_metrics_carry_the_pool_and_follow_it() -> None:
    metrics.set_planned("ns-m", "md", "cpu-general", 2, 0.5)
    metrics.set_autoscaled("ns-m", "md", "cpu-general", 3, 0.7)
    metrics.set_planned("ns-m", "md", "cpu-general", 3, 0.5)  # the plan's p95 stays out
    assert metrics.DESIRED_REPLICAS.labels("ns-m", "md", "cpu-general")._value.get() == 3
    assert metrics.PREDICTED_P95.labels("ns-m", "md", "cpu-general")._value.get() == 0.7
    metrics.set_planned("ns-m", "md", "gpu-l4", 1, 0.2)  # re-placed: old series dropped
    samples = {(s.labels["pool"], s.name) for m in (metrics.DESIRED_REPLICAS,)
               for s in m.collect()[0].samples if s.labels["namespace"] == "ns-m"}
    assert samples == {("gpu-l4", "wattserve_operator_desired_replicas")}
    metrics.forget("ns-m", "md")
    assert not [s for s in metrics.DESIRED_REPLICAS.collect()[0].samples
                if s.labels["namespace"] == "ns-m"]


def test_cli_rejects_a_bad_window_and_interval(capsys: pytest.CaptureFixture[str]) -> None:
    from wattserve.controller.cli import run

    assert run(["--promql-window", "soon"]) == 2
    assert "--promql-window" in capsys.readouterr().err
    assert run(["--autoscale-interval", "0"]) == 2
    assert "--autoscale-interval" in capsys.readouterr().err


def test_cli_help_lists_the_autoscaler_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from wattserve.controller.cli import run

    with pytest.raises(SystemExit):
        run(["--help"])
    out = capsys.readouterr().out
    for flag in ("--prometheus-url", "--autoscale-interval", "--promql-window",
                 "WATTSERVE_PROMETHEUS_URL", "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS"):
        assert flag in out
