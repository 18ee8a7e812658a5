"""The idle timeout from the cost of waking (wattserve.autoscale.idle): properties and cases."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wattserve.autoscale.idle import (
    DEFAULT_MISS_PENALTY_S,
    IdleInputs,
    idle_timeout,
    learn_cold_start,
    misses_per_wake,
)

colds = st.floats(min_value=0.0, max_value=600.0, allow_nan=False)
watts = st.floats(min_value=1.0, max_value=3000.0, allow_nan=False)
rates = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
penalties = st.floats(min_value=0.0, max_value=3600.0, allow_nan=False)
slos = st.floats(min_value=0.05, max_value=120.0, allow_nan=False)
goals = st.sampled_from(["cost", "energy", "carbon", "balanced"])


@st.composite
def inputs(draw: st.DrawFn) -> IdleInputs:
    idle = draw(watts)
    return IdleInputs(cold_start_s=draw(colds), idle_watts=idle,
                      wake_watts=draw(st.floats(min_value=idle, max_value=idle * 4)),
                      usd_per_hour=1.0, slo_p95_s=draw(slos),
                      floor_s=draw(st.floats(min_value=0.0, max_value=5.0)),
                      active_rate=draw(rates), miss_penalty_s=draw(penalties), goal=draw(goals),
                      min_timeout_s=60.0, max_timeout_s=86400.0)


@settings(max_examples=300, deadline=None)
@given(inputs(), colds)
def test_a_longer_cold_start_never_shortens_the_timeout(base: IdleInputs, other: float) -> None:
    lo, hi = sorted((base.cold_start_s, other))
    assert (idle_timeout(replace(base, cold_start_s=lo)).seconds
            <= idle_timeout(replace(base, cold_start_s=hi)).seconds + 1e-9)


@settings(max_examples=300, deadline=None)
@given(inputs(), penalties)
def test_a_costlier_slo_miss_never_shortens_the_timeout(base: IdleInputs, other: float) -> None:
    lo, hi = sorted((base.miss_penalty_s, other))
    assert (idle_timeout(replace(base, miss_penalty_s=lo)).seconds
            <= idle_timeout(replace(base, miss_penalty_s=hi)).seconds + 1e-9)


@settings(max_examples=300, deadline=None)
@given(inputs(), rates)
def test_a_busier_model_never_gets_a_shorter_timeout(base: IdleInputs, other: float) -> None:
    lo, hi = sorted((base.active_rate, other))
    assert (idle_timeout(replace(base, active_rate=lo)).seconds
            <= idle_timeout(replace(base, active_rate=hi)).seconds + 1e-9)


@settings(max_examples=300, deadline=None)
@given(inputs(), st.floats(min_value=1.0, max_value=4.0))
def test_a_hungrier_wake_never_shortens_and_a_hungrier_idle_never_lengthens(
        base: IdleInputs, factor: float) -> None:
    wake = base.wake_watts or base.idle_watts
    t = idle_timeout(base).seconds
    assert idle_timeout(replace(base, wake_watts=wake * factor)).seconds >= t - 1e-9
    assert idle_timeout(replace(base, idle_watts=base.idle_watts * factor)).seconds <= t + 1e-9


@settings(max_examples=300, deadline=None)
@given(inputs(), slos)
def test_a_looser_slo_never_lengthens_the_timeout(base: IdleInputs, other: float) -> None:
    lo, hi = sorted((base.slo_p95_s, other))
    assert (idle_timeout(replace(base, slo_p95_s=hi)).seconds
            <= idle_timeout(replace(base, slo_p95_s=lo)).seconds + 1e-9)


@settings(max_examples=300, deadline=None)
@given(inputs())
def test_the_timeout_stays_within_its_bounds_and_names_its_numbers(base: IdleInputs) -> None:
    d = idle_timeout(base)
    assert base.min_timeout_s <= d.seconds <= base.max_timeout_s
    assert f"{d.seconds:.0f}s" in d.message
    assert d.reason in ("BreakEven", "ClampedToMinimum", "ClampedToMaximum")


def test_break_even_equals_one_wake_in_idle_replica_seconds() -> None:
    # Cost: a CPU replica starting 300 s, SLO 2 s, 0.1 req/s when active, a miss = 60 s.
    d = idle_timeout(IdleInputs(cold_start_s=300.0, idle_watts=20.0, slo_p95_s=2.0,
                                active_rate=0.1, miss_penalty_s=60.0, goal="cost"))
    misses = 1 + 0.1 * 300.0
    assert d.misses_per_wake == pytest.approx(misses)
    assert d.seconds == pytest.approx(300.0 + misses * 60.0)
    assert d.reason == "BreakEven"
    assert "SLO misses" in d.message


def test_energy_goal_prices_the_wake_draw_against_the_idle_draw() -> None:
    base = IdleInputs(cold_start_s=200.0, idle_watts=50.0, wake_watts=150.0, slo_p95_s=600.0,
                      goal="energy")
    assert idle_timeout(base).seconds == pytest.approx(200.0 * 3)
    assert idle_timeout(replace(base, goal="cost")).seconds == pytest.approx(200.0)
    assert idle_timeout(replace(base, goal="balanced")).seconds == pytest.approx(400.0)


def test_a_cold_start_within_the_slo_slack_costs_no_penalty_and_clamps_to_the_minimum() -> None:
    d = idle_timeout(IdleInputs(cold_start_s=2.0, idle_watts=20.0, slo_p95_s=10.0,
                                floor_s=1.0, active_rate=5.0, miss_penalty_s=600.0))
    assert misses_per_wake(IdleInputs(cold_start_s=2.0, idle_watts=20.0, slo_p95_s=10.0,
                                      floor_s=1.0)) == 0.0
    assert d.seconds == 120.0 and d.reason == "ClampedToMinimum"
    assert "no SLO penalty" in d.message


def test_the_override_wins_and_the_message_keeps_the_models_answer() -> None:
    d = idle_timeout(IdleInputs(cold_start_s=300.0, idle_watts=20.0, slo_p95_s=2.0,
                                override_s=30.0))
    assert d.seconds == 30.0 and d.reason == "Override"
    # 300 s of cold start + one miss at the default price
    assert "spec.scaling.idleTimeoutSeconds" in d.message and (
        f"{300 + DEFAULT_MISS_PENALTY_S:.0f}s" in d.message)


def test_the_maximum_caps_an_expensive_wake() -> None:
    d = idle_timeout(IdleInputs(cold_start_s=600.0, idle_watts=20.0, slo_p95_s=1.0,
                                active_rate=50.0, miss_penalty_s=3600.0, max_timeout_s=3600.0))
    assert d.seconds == 3600.0 and d.reason == "ClampedToMaximum"


@pytest.mark.parametrize("field,value", [("cold_start_s", math.nan), ("idle_watts", -1.0),
                                         ("miss_penalty_s", math.inf), ("goal", "speed"),
                                         ("override_s", math.nan)])
def test_bad_inputs_are_rejected_naming_the_field(field: str, value: object) -> None:
    base = IdleInputs(cold_start_s=10.0, idle_watts=10.0)
    with pytest.raises(ValueError, match=field.split("_s")[0]):
        idle_timeout(replace(base, **{field: value}))


def test_learned_cold_start_replaces_the_seed_then_averages() -> None:
    first = learn_cold_start(None, 12.0)
    assert first == 12.0
    assert learn_cold_start(first, 22.0) == pytest.approx(0.7 * 12.0 + 0.3 * 22.0)
    with pytest.raises(ValueError):
        learn_cold_start(first, -1.0)
