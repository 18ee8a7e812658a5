"""Trace reader (the in-repo Azure trace), rescaling, and the seeded generator."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import pytest
from wattserve.simulate.trace import (
    generate_bursty,
    rate_series,
    scale_lengths,
)
from wattserve.simulate.trace_files import read_trace

ROOT = Path(__file__).resolve().parents[2]
AZURE = ROOT / "benchmarks" / "traces" / "AzureLLMInferenceTrace_conv.csv"


def test_in_repo_azure_trace_is_there_with_its_license() -> None:
    assert AZURE.is_file()
    assert (AZURE.parent / "LICENSE-CC-BY-4.0.txt").is_file()
    assert "CC BY 4.0" in (AZURE.parent / "README.md").read_text()


def test_reads_the_azure_trace_as_one_hour_of_arrivals() -> None:
    trace = read_trace(AZURE)
    assert len(trace) == 19366
    assert trace[0].arrival_s == 0.0
    assert 3400 < trace[-1].arrival_s < 3600
    assert all(a.arrival_s <= b.arrival_s for a, b in itertools.pairwise(trace))
    assert (trace[0].prompt_tokens, trace[0].gen_tokens) == (374, 44)
    per_minute = [r * 60 for r in rate_series(trace)]
    assert min(per_minute[:-1]) >= 30 and max(per_minute) <= 520


def test_rate_and_length_scaling(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                   "2023-11-16 18:15:46.6805900,100,40\n"
                   "2023-11-16 18:15:56.6805900,300,10\n")
    fast = read_trace(csv, rate_scale=2.0, length_scale=0.5)
    assert [r.arrival_s for r in fast] == pytest.approx([0.0, 5.0])
    assert [(r.prompt_tokens, r.gen_tokens) for r in fast] == [(50, 20), (150, 5)]
    fitted = scale_lengths(read_trace(csv), prompt_mean=100, gen_mean=50)
    assert statistics.mean(r.prompt_tokens for r in fitted) == pytest.approx(100)
    assert statistics.mean(r.gen_tokens for r in fitted) == pytest.approx(50)


def test_generator_is_seeded_bursty_diurnal_and_heavy_tailed() -> None:
    a = generate_bursty(seed=3, hours=2, mean_rate=4.0, prompt_mean=200, gen_mean=100)
    assert a == generate_bursty(seed=3, hours=2, mean_rate=4.0, prompt_mean=200, gen_mean=100)
    assert a != generate_bursty(seed=4, hours=2, mean_rate=4.0, prompt_mean=200, gen_mean=100)
    assert len(a) / 7200 == pytest.approx(4.0 * 1.15, rel=0.3)  # mean rate plus bursts
    rates = rate_series(a)
    assert statistics.mean(rates[50:70]) > 2 * statistics.mean(rates[:10])  # diurnal peak
    assert max(rates) > 1.5 * statistics.median(rates)  # bursts
    gen = sorted(r.gen_tokens for r in a)
    assert gen[int(0.99 * len(gen))] > 5 * gen[len(gen) // 2]  # heavy tail
    assert statistics.mean(gen) == pytest.approx(100, rel=0.15)
