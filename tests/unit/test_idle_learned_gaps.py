"""Scale to zero learns the model's own idle gaps: the timeout that would have cost least
over them, in the operator's tick and in the simulator alike."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from wattserve.autoscale.idle import (
    GAP_MARGIN_S,
    MAX_GAPS,
    MIN_GAPS,
    IdleInputs,
    idle_timeout,
    inputs_for,
    learned_timeout,
    remember_gap,
)
from wattserve.reconcile.zero import iso
from wattserve.simulate.engine import Simulation
from wattserve.simulate.report import summarize
from wattserve.simulate.trace import TraceRequest
from wattserve.simulate.wattserve_policy import WattservePolicy

from tests.unit.test_controller_autoscaling import NOW, applied, busy, idle, placed_body, run_tick
from tests.unit.test_simulate_scale_to_zero import CPU, SPEC

# ---- the choice -----------------------------------------------------------------------


def test_too_few_gaps_leave_the_break_even() -> None:
    assert learned_timeout((300.0,) * (MIN_GAPS - 1), 1000.0, 120.0, 86400.0) is None
    base = IdleInputs(cold_start_s=15.0, idle_watts=10.0, slo_p95_s=3.0)
    few = idle_timeout(replace(base, gaps=(300.0,) * (MIN_GAPS - 1)))
    assert few.reason != "LearnedGaps" and few.seconds == idle_timeout(base).seconds


def test_a_dear_wake_keeps_the_model_warm_through_its_gaps_but_not_through_silences() -> None:
    gaps = (200.0, 300.0, 250.0, 400.0, 350.0, 7200.0, 280.0, 10800.0)
    # A wake worth 1,000 idle seconds: waiting out a 400 s gap is cheaper than a wake, a
    # two-hour silence is not.
    assert learned_timeout(gaps, 1000.0, 120.0, 86400.0) == 400.0 + GAP_MARGIN_S
    # A cheap wake: scale to zero as soon as allowed.
    assert learned_timeout(gaps, 50.0, 120.0, 86400.0) == 120.0
    # Never above the maximum (a gap cut to it is a candidate).
    assert learned_timeout(gaps, 1e9, 120.0, 300.0) == 300.0


def test_a_dearer_wake_never_shortens_the_learned_timeout() -> None:
    gaps = (130.0, 600.0, 900.0, 170.0, 2400.0, 450.0, 5000.0, 700.0, 260.0)
    last = 0.0
    for wake in (0.0, 10.0, 100.0, 300.0, 600.0, 1000.0, 3000.0, 10000.0):
        t = learned_timeout(gaps, wake, 120.0, 86400.0)
        assert t is not None and t >= last
        last = t


def test_the_decision_names_the_gaps_and_the_override_still_wins() -> None:
    base = IdleInputs(cold_start_s=15.0, idle_watts=10.0, slo_p95_s=3.0, miss_penalty_s=300.0,
                      gaps=(400.0,) * MIN_GAPS)
    d = idle_timeout(base)
    assert (d.reason, d.seconds) == ("LearnedGaps", 400.0 + GAP_MARGIN_S)
    assert f"last {MIN_GAPS} idle gaps" in d.message and "keeping 6 warm" in d.message
    assert idle_timeout(replace(base, override_s=45.0)).reason == "Override"


def test_remembered_gaps_are_the_most_recent_and_only_numbers() -> None:
    gaps: tuple[float, ...] = ()
    for g in range(MAX_GAPS + 5):
        gaps = remember_gap(gaps, float(g))
    assert len(gaps) == MAX_GAPS and gaps[-1] == MAX_GAPS + 4
    assert remember_gap(gaps, math.nan) == gaps and remember_gap(gaps, -1.0) == gaps


# ---- the operator's tick ---------------------------------------------------------------

def test_the_operator_remembers_a_gap_when_traffic_resumes_or_a_request_wakes_it() -> None:
    body = placed_body(desired=1, minReplicas=0)
    first = run_tick(body, idle())
    body = applied(body, first.status_patch)  # idle since NOW - 60
    resumed = run_tick(body, busy(rate=0.2, p95=0.5), first.state, now=NOW + 240)
    assert resumed.status_patch["idle"]["gaps"] == [300.0]
    assert resumed.status_patch["idle"]["since"] is None
    # At zero, woken by a request: the gap ends at the wake, not at the next tick.
    body = placed_body(desired=1, ready=0, minReplicas=0)
    body["status"]["idle"] = {"since": iso(NOW - 3600), "scaledToZeroAt": iso(NOW - 3000),
                              "wakeRequestedAt": iso(NOW - 20), "gaps": [100.0]}
    woke = run_tick(body, None, now=NOW)
    assert woke.status_patch["idle"]["gaps"] == [100.0, 3580.0]


def test_a_metrics_outage_ends_no_gap() -> None:
    body = placed_body(desired=1, minReplicas=0)
    first = run_tick(body, idle())
    body = applied(body, first.status_patch)
    down = run_tick(body, None, first.state, now=NOW + 240)
    assert "gaps" not in down.status_patch["idle"]


# ---- the simulator runs the same choice ------------------------------------------------

@pytest.mark.parametrize("period", [450.0, 600.0])
def test_a_model_used_every_few_minutes_stops_going_cold_once_its_gaps_are_learned(
        period: float) -> None:
    # A job every 7.5 or 10 minutes; one wake (a 15 s cold start that misses the 3 s SLO)
    # is worth a little less than that: break-even goes cold before every request.
    trace = [TraceRequest(10.0 + period * i, 100, 100) for i in range(20)]
    alone = idle_timeout(inputs_for(SPEC)).seconds
    assert alone < period
    blind = Simulation(trace, CPU, WattservePolicy(SPEC, initial_replicas=1,
                                                   idle_timeout_s=alone)).run()
    assert blind.cold_starts == 19
    learned = WattservePolicy(SPEC, initial_replicas=1)
    res = Simulation(trace, CPU, learned).run()
    assert learned.idle_decisions[-1].reason == "LearnedGaps"
    assert learned.idle_decisions[-1].seconds >= period - 2 * learned.interval_s  # idle clock
    assert res.cold_starts <= MIN_GAPS + 1  # none once the gaps are known
    assert summarize(res, 3.0).slo_attainment > summarize(blind, 3.0).slo_attainment + 0.5


def test_learning_never_shortens_the_break_even() -> None:
    # Gaps far above one wake: waking each time is cheapest in hindsight, but the timeout
    # stays at break-even (the SLO first).
    base = IdleInputs(cold_start_s=15.0, idle_watts=10.0, slo_p95_s=3.0, miss_penalty_s=300.0)
    alone = idle_timeout(base)
    d = idle_timeout(replace(base, gaps=(3000.0, 5000.0, 4000.0, 3500.0, 6000.0, 2500.0)))
    assert d.seconds == alone.seconds and d.reason == alone.reason


# ---- wattserve simulate says which idle timeout the operator would use ----------------

def test_the_simulate_cli_reports_the_idle_timeout_at_min_replicas_zero(
        capsys: pytest.CaptureFixture[str]) -> None:
    from wattserve.simulate.cli import run

    from tests.unit.test_simulate_report_cli import POOLS, SMOL

    args = ["--generate", "family=sparse,unit=1,hours=2,seed=3", "--model", str(SMOL),
            "--pools", str(POOLS), "--policy", "wattserve", "--no-oracle"]
    assert run([*args, "--min-replicas", "0", "-o", "json"]) == 0
    idle = json.loads(capsys.readouterr().out)["idleTimeout"]
    assert idle["reason"] in ("BreakEven", "LearnedGaps") and idle["seconds"] >= 120
    assert run([*args, "--min-replicas", "0", "--idle-timeout", "200"]) == 0
    assert "scale to zero (Override" in capsys.readouterr().out
    assert run([*args, "-o", "json"]) == 0  # minReplicas 1: nothing to report
    assert "idleTimeout" not in json.loads(capsys.readouterr().out)
