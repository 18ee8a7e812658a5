"""The GPU check's CPU-side parts (benchmarks/gpu): arguments, statistics, the plan it asks
for and reads back (the real ``wattserve plan`` CLI), the comparison and the JSON file.
No GPU result is made up here: the measured side is only ever synthetic input to the math."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))

import check  # noqa: E402
import compare as cmp  # noqa: E402


def test_arguments_parse_levels_and_reject_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    args = check.parse_args(["--out", "x.json", "--concurrency", "1,4,16", "--requests", "10"])
    assert args.concurrency == (1, 4, 16) and args.requests == 10
    assert check.parse_args(["--out", "x.json"]).concurrency == (1, 8, 32)
    for bad in (["--concurrency", "1,a"], ["--concurrency", "0"], ["--requests", "-1"], []):
        with pytest.raises(SystemExit) as exc:
            check.parse_args(["--out", "x.json", *bad] if bad else bad)
        assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_percentile_interpolates_between_ranks() -> None:
    assert cmp.percentile([], 0.5) is None
    assert cmp.percentile([5.0], 0.95) == 5.0
    assert cmp.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert cmp.percentile(list(range(1, 101)), 0.95) == pytest.approx(95.05)
    with pytest.raises(ValueError):
        cmp.percentile([1.0], 1.5)


def test_summary_counts_only_served_requests_and_energy_per_generated_token() -> None:
    reqs = [cmp.Request(latency_s=1.0, ttft_s=0.2, completion_tokens=81, prompt_tokens=30),
            cmp.Request(latency_s=2.0, ttft_s=0.4, completion_tokens=161, prompt_tokens=30),
            cmp.Request(latency_s=0.01, ttft_s=0.0, completion_tokens=0, prompt_tokens=0,
                        ok=False)]
    level = cmp.summarize(2, reqs, wall_s=2.0, energy_mj=(1_000_000, 1_484_000))
    assert (level.requests, level.errors, level.generated_tokens) == (2, 1, 242)
    assert level.aggregate_tokens_per_second == 121.0
    assert level.decode_tokens_per_second_per_request == 100.0  # 80/0.8 s and 160/1.6 s
    assert level.p50_latency_ms == 1500.0  # the fast error is not in the latencies
    assert level.energy_j == 484.0 and level.mean_power_w == 242.0
    assert level.joules_per_token == 2.0
    with pytest.raises(ValueError, match="backwards"):
        cmp.summarize(1, reqs, 1.0, energy_mj=(5, 4))


def test_comparison_flags_errors_beyond_25_percent() -> None:
    assert cmp.Comparison("x", 100.0, 120.0).within_tolerance is True
    off = cmp.Comparison("x", 100.0, 130.0)
    assert off.relative_error == pytest.approx(0.3) and off.within_tolerance is False
    assert cmp.Comparison("x", 100.0, None).within_tolerance is None


def test_the_plan_is_asked_about_the_measured_load_on_an_h200_pool() -> None:
    md = yaml.safe_load((REPO / "examples" / "models" / "smollm2-135m.yaml").read_text())
    level = cmp.summarize(8, [cmp.Request(0.5, 0.05, 128, 40)] * 16, wall_s=1.0)
    doc = cmp.model_deployment(md, level, prompt_tokens=40, output_tokens=128)
    assert doc["spec"]["expectedLoad"] == {"requestsPerSecond": "16", "promptTokens": 40,
                                           "outputTokens": 128}
    assert doc["spec"]["placement"] == {"pool": "gpu-h200", "engine": "vllm"}
    assert md["spec"]["expectedLoad"]["requestsPerSecond"] == "2"  # the input is untouched
    pred = check.plan_prediction(md, level, 40, 128)  # the real `wattserve plan -o json`
    assert (pred.pool, pred.engine) == ("gpu-h200", "vllm")
    assert pred.p95_ms > 0 and pred.tokens_per_second_per_replica > 0
    assert pred.joules_per_token > 0
    rows = {c.metric: c for c in cmp.compare(pred, level)}
    assert rows["p95_latency_ms"].measured == 500.0
    assert rows["joules_per_token"].measured is None  # no energy counter read: no figure


def test_read_plan_refuses_a_plan_that_placed_nothing() -> None:
    with pytest.raises(ValueError, match="placed nothing: no feasible pool"):
        cmp.read_plan({"placement": {"pool": None, "reason": "no feasible pool"}})


def test_result_file_is_one_json_document_with_the_schema(tmp_path: Path) -> None:
    level = cmp.summarize(1, [cmp.Request(1.0, 0.1, 11, 5)], 1.0, (0, 22_000))
    out = tmp_path / "sub" / "gpu-check.json"
    cmp.write_result(out, {"levels": [level], "errors": []})
    body = json.loads(out.read_text())
    assert body["schema"] == cmp.SCHEMA
    assert body["levels"][0]["joules_per_token"] == 2.0
    assert [p.name for p in out.parent.iterdir()] == ["gpu-check.json"]  # no temp file left


def test_plan_only_run_writes_the_prediction(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    assert check.main(["--out", str(out), "--plan-only"]) == 0
    body = json.loads(out.read_text())
    assert body["prediction"]["pool"] == "gpu-h200"
    assert body["levels"] == [] and body["errors"] == []
