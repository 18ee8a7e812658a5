"""The trace bank: generated families have the shapes they claim, real traces load, and a
short bank run reports wattserve against the oracle and the cheapest baseline."""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

import pytest
from wattserve.simulate.bank import (
    FAMILIES,
    MODELS,
    Entry,
    bank_summary,
    bank_table,
    entries,
    run_bank,
    scenario,
)
from wattserve.simulate.families import Shape, generate
from wattserve.simulate.trace import rate_series
from wattserve.simulate.trace_files import read_trace

ROOT = Path(__file__).resolve().parents[2]
SHAPE = Shape(64, 64)


def test_families_are_seeded_and_held_out_seeds_differ() -> None:
    for family in FAMILIES:
        a = generate(family, seed=1, unit_rate=1.0, shape=SHAPE, hours=1.0)
        b = generate(family, seed=1, unit_rate=1.0, shape=SHAPE, hours=1.0)
        c = generate(family, seed=2, unit_rate=1.0, shape=SHAPE, hours=1.0)
        assert a == b and a != c, family


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_flash_crowd_rises_at_least_8x_within_30_seconds(seed: int) -> None:
    trace = generate("flash", seed=seed, unit_rate=2.0, shape=SHAPE, hours=1.0)
    per_10s = rate_series(trace, 10.0)
    base = statistics.median(per_10s)
    jumps = [i for i in range(len(per_10s) - 6)
             if statistics.mean(per_10s[i + 3:i + 6]) >= 8 * 0.8 * base
             and statistics.mean(per_10s[max(0, i - 3):i + 1]) <= 1.3 * base]
    assert jumps  # from about the base to >= 8x (less Poisson noise) within 30 s


def test_heavy_tailed_lengths_have_lognormal_sigma_of_at_least_one() -> None:
    trace = generate("heavy", seed=1, unit_rate=5.0, shape=SHAPE, hours=1.0)
    logs = [math.log(r.prompt_tokens) for r in trace]
    assert statistics.stdev(logs) >= 1.0
    assert max(r.prompt_tokens for r in trace) > 20 * statistics.median(
        r.prompt_tokens for r in trace)


def test_sparse_traces_have_minutes_between_requests_and_hours_of_silence() -> None:
    trace = generate("sparse", seed=1, unit_rate=1.0, shape=SHAPE, hours=6.0)
    gaps = [b.arrival_s - a.arrival_s for a, b in itertools.pairwise(trace)]
    assert 60.0 < statistics.median(gaps) < 600.0
    assert max(gaps) >= 3600.0
    assert len(trace) < 200


def test_the_mooncake_trace_is_in_the_repository_with_its_licence() -> None:
    traces = ROOT / "benchmarks" / "traces"
    assert (traces / "LICENSE-APACHE-mooncake.txt").exists()
    trace = read_trace(traces / "mooncake_conversation.csv")
    assert len(trace) == 12031
    assert statistics.mean(r.prompt_tokens for r in trace) > 10000
    shared = ROOT.parent / "shared" / "traces" / "mooncake" / "conversation_trace.jsonl"
    if shared.exists():  # the original JSON lines read the same
        assert read_trace(shared)[:100] == trace[:100]


def test_bank_slos_sit_above_an_idle_replica_and_sparse_entries_allow_zero() -> None:
    for model in MODELS:
        scn = scenario(Entry("steady", model, 1.5, 1, 0.05), ROOT)
        assert scn.slo_s > 0 and not scn.allows_zero
        tight = scn.slo_s
        loose = scenario(Entry("steady", model, 3.0, 1, 0.05), ROOT).slo_s
        assert loose > tight
    assert scenario(Entry("sparse", MODELS[0], 1.5, 1, 0.05), ROOT).allows_zero
    assert len(entries()) == 3 * (2 + len(FAMILIES)) * 2


def test_a_short_bank_run_reports_ratios_to_the_oracle_and_the_cheapest_baseline() -> None:
    items = [e for e in entries(hours=0.1, models=["smollm2-cpu"],
                                traces=["steady", "sparse"]) if e.slo == 3.0]
    lines: list[str] = []
    outcomes = run_bank(items, ROOT, progress=lines.append)
    assert len(lines) == 2 and lines[0].startswith("[1/2]")
    steady, sparse = outcomes
    assert steady.oracle.slo_attainment == 1.0
    assert steady.ratio("replica_hours", steady.oracle) is not None
    # the oracle is the floor for anything that meets the SLO in every minute
    if steady.cheapest is not None and steady.cheapest.minutes_violated == 0:
        assert steady.oracle.replica_hours <= steady.cheapest.replica_hours + 1e-9
    assert sparse.wattserve.cold_starts >= 1 and sparse.wattserve.held_requests >= 1
    text = bank_table(outcomes)
    assert "steady#1 smollm2-cpu" in text and "sparse#1" in text
    assert "×" in text and ("met" in text or "missed" in text)
    assert "entries meet every target" in bank_summary(outcomes)
