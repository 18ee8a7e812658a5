"""Reports, the sweep, the placement adapter and the `wattserve simulate` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wattserve.autoscale.model import Goal
from wattserve.autoscale.performance import SimplePerformance
from wattserve.simulate.baselines import StaticPolicy
from wattserve.simulate.cli import run
from wattserve.simulate.engine import Simulation
from wattserve.simulate.report import minute_attainment, summarize, table
from wattserve.simulate.scenario import (
    Scenario,
    capacity_of,
    load_model,
    load_pools,
    place,
    scaling_inputs,
)
from wattserve.simulate.sweep import cheapest, run_policy, sweep_policy, with_overrides
from wattserve.simulate.trace import TraceRequest
from wattserve.simulate.wattserve_policy import histogram_quantile

ROOT = Path(__file__).resolve().parents[2]
AZURE = ROOT / "benchmarks" / "traces" / "AzureLLMInferenceTrace_conv.csv"
SMOL = ROOT / "examples" / "models" / "smollm2-135m.yaml"
POOLS = ROOT / "examples" / "pools.yaml"
CPU = SimplePerformance(100.0, 100.0, 1, 1000.0, 10.0, 10.0, 30.0, 0.5, 400.0)


def test_attainment_counts_requests_in_minutes_whose_p95_meets_the_slo() -> None:
    # Minute 0: 10 quick requests. Minute 1: 10 requests arriving together on one
    # replica -> they queue, p95 far above 2 s.
    trace = [TraceRequest(float(i), 10, 50) for i in range(10)]
    trace += [TraceRequest(60.0, 10, 50) for _ in range(10)]
    res = Simulation(trace, CPU, StaticPolicy(1)).run()
    attainment, violated = minute_attainment(res, slo_s=2.0)
    assert (attainment, violated) == (0.5, 1)
    s = summarize(res, slo_s=2.0)
    assert s.slo_attainment == 0.5 and s.requests == 20
    assert s.usd == pytest.approx(s.replica_hours * 0.5)
    assert s.grams_co2 == pytest.approx(s.kwh * 400.0)
    assert "slo_attainment" in table([s]) and table([s], markdown=True).startswith("| policy")


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = (1.0, 2.0, 4.0)
    assert histogram_quantile(0.5, [0.5, 1.5, 1.5, 3.0], buckets) == pytest.approx(1.5)
    assert histogram_quantile(0.95, [10.0] * 5, buckets) == 4.0  # +Inf bucket
    assert histogram_quantile(0.95, [], buckets) is None


def test_placement_adapter_builds_scaling_inputs_from_the_api_types() -> None:
    md = load_model(SMOL)
    pool, perf = place(md, load_pools(POOLS))
    spec = scaling_inputs(md, perf)
    assert pool == "cpu-general"
    assert spec.slo_p95_ms == md.spec.slo.latency_p95_ms
    assert spec.slo_ttft_p95_ms == md.spec.slo.ttft_p95_ms
    assert spec.max_replicas == md.spec.scaling.max_replicas
    assert spec.scale_down_delay_s == md.spec.scaling.scale_down_delay_seconds
    assert spec.goal is Goal.COST and spec.cold_start_s == perf.cold_start_s
    cap = capacity_of(perf)
    assert cap.max_concurrency == perf.max_concurrency
    assert cap.per_stream_tps(1) == pytest.approx(perf.per_stream_tps(1))


def small_scenario() -> Scenario:
    md = load_model(SMOL)
    pool, perf = place(md, load_pools(POOLS))
    trace = [TraceRequest(0.25 * i + (30.0 if i > 2400 else 0.0), 64, 64) for i in range(3600)]
    return with_overrides(Scenario(md, perf, pool, trace), max_replicas=12)


def test_sweep_picks_the_cheapest_setting_that_reaches_99_percent() -> None:
    scn = small_scenario()
    runs, best = sweep_policy(scn, "static")
    assert best is not None and best.summary.slo_attainment >= 0.99
    passing = [r for r in runs if r.summary.slo_attainment >= 0.99]
    assert best.summary.replica_hours == min(r.summary.replica_hours for r in passing)
    assert cheapest([r for r in runs if r not in passing]) is None


def test_wattserve_meets_the_slo_with_fewer_replica_hours_than_peak_static() -> None:
    scn = small_scenario()
    ws = run_policy(scn, "wattserve").summary
    static = run_policy(scn, "static", 12).summary
    assert ws.slo_attainment >= 0.99
    assert ws.replica_hours < 0.6 * static.replica_hours


def test_cli_runs_policies_and_writes_json_and_a_plot(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "plot.png"
    rc = run(["--trace", str(AZURE), "--model", str(SMOL), "--pools", str(POOLS),
              "--policy", "wattserve,static", "--fit-lengths", "--max-replicas", "12",
              "-o", "json", "--plot", str(png)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "smollm2-135m" and doc["pool"] == "cpu-general"
    assert [r["policy"] for r in doc["runs"]] == ["wattserve", "static"]
    assert all(r["requests"] == 19366 for r in doc["runs"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_generates_a_trace_and_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(["--generate", "hours=0.25,rate=1,seed=2,prompt=64,gen=64", "--model", str(SMOL),
              "--pools", str(POOLS), "--policy", "hpa", "--setting", "0.6"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "hpa" in out and "cpu 60%" in out and "slo_attainment" in out


def test_cli_rejects_unknown_policies_and_missing_files(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert run(["--trace", str(AZURE), "--model", str(SMOL), "--pools", str(POOLS),
                "--policy", "magic"]) == 2
    assert run(["--trace", "/nonexistent.csv", "--model", str(SMOL), "--pools", str(POOLS)]) == 2
    assert "nonexistent" in capsys.readouterr().err
