"""PromQL rendering from the contract, and collecting one Observation."""

from __future__ import annotations

import math

import pytest
from wattserve import contract
from wattserve.autoscale.observe import Observation, collect, joules_per_token
from wattserve.autoscale.promql import (
    EnergySource,
    QueryTemplates,
    check_window,
    render,
    window_seconds,
)


class FakeClient:
    def __init__(self, answers: dict[str, float | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def query_value(self, promql: str) -> float | None:
        self.asked.append(promql)
        for needle, value in self.answers.items():
            if needle in promql:
                return value
        return None


def test_queries_use_the_contract_metric_names_labels_and_window() -> None:
    q = render(QueryTemplates(window="2m"), "prod", "llama")
    sel = f'{contract.LABEL_NAMESPACE}="prod", {contract.LABEL_MODEL_DEPLOYMENT}="llama"'
    assert q.request_rate == f"sum(rate({contract.REQUESTS_TOTAL}{{{sel}}}[2m]))"
    assert q.p95_latency == (
        f"histogram_quantile(0.95, sum by (le) "
        f"(rate({contract.REQUEST_LATENCY_SECONDS}_bucket{{{sel}}}[2m])))")
    assert contract.TIME_TO_FIRST_TOKEN_SECONDS + "_bucket" in q.p95_ttft
    assert contract.PROMPT_TOKENS_TOTAL in q.prompt_tps
    assert contract.GENERATION_TOKENS_TOTAL in q.generation_tps
    assert q.in_flight == f"sum({contract.REQUESTS_IN_FLIGHT}{{{sel}}})"
    assert contract.REQUESTS_QUEUED in q.queued
    assert q.busy == f"sum(rate({contract.REQUEST_LATENCY_SECONDS}_sum{{{sel}}}[2m]))"
    kepler = q.energy_watts[EnergySource.KEPLER]
    assert 'pod_namespace="prod"' in kepler and 'zone=~"package|dram"' in kepler
    assert "=~\"llama-" not in kepler  # pods are joined exactly, not matched by name prefix
    assert "kepler_pod_cpu_joules_total" in kepler and "kepler_pod_gpu_joules_total" in kepler
    assert "/ 1000" in q.energy_watts[EnergySource.DCGM]  # millijoules -> joules
    assert contract.ENERGY_JOULES_TOTAL in q.energy_watts[EnergySource.WATTSERVE]


def test_label_values_are_escaped() -> None:
    q = render(QueryTemplates(), 'we"ird', "md")
    assert 'namespace="we\\"ird"' in q.request_rate


def test_templates_are_configurable() -> None:
    t = QueryTemplates(request_rate='sum(rate(my_requests{{job="{name}"}}[{window}]))')
    assert render(t, "ns", "md").request_rate == 'sum(rate(my_requests{job="md"}[1m]))'


def test_window_must_cover_four_scrape_intervals() -> None:
    assert window_seconds("1m") == 60.0
    check_window("1m", 15.0)
    with pytest.raises(ValueError, match="4 scrape intervals"):
        check_window("30s", 15.0)
    with pytest.raises(ValueError):
        window_seconds("1 minute")


def test_collect_fills_every_field_and_prefers_kepler_energy() -> None:
    fake = FakeClient({  # first needle found wins: the energy joins name in_flight too
        "kepler_pod": 100.0, "DCGM": 999.0,
        "wattserve_requests_total": 2.0, "wattserve_request_duration": 1.5,
        "wattserve_time_to_first": 0.2, "wattserve_prompt_tokens": 500.0,
        "wattserve_generation_tokens": 200.0, "wattserve_requests_in_flight": 3.0,
        "wattserve_requests_queued": 1.0,
    })
    obs = collect(fake, render(QueryTemplates(), "ns", "md"))
    # busy: the duration histogram's _sum (the needle "wattserve_request_duration" again)
    assert obs == Observation(2.0, 1.5, 0.2, 500.0, 200.0, 3.0, 1.0, 0.5, "kepler", busy=1.5)
    assert not any("DCGM" in q for q in fake.asked)  # stops at the first source that answers


def test_collect_falls_back_to_dcgm_then_to_wattserve_energy() -> None:
    base = {"wattserve_requests_total": 1.0, "wattserve_generation_tokens": 100.0}
    obs = collect(FakeClient({**base, "DCGM": 300.0}), render(QueryTemplates(), "n", "m"))
    assert obs.energy_source == "dcgm" and obs.joules_per_token == pytest.approx(3.0)
    obs = collect(FakeClient({**base, "wattserve_energy": 50.0}),
                  render(QueryTemplates(), "n", "m"))
    assert obs.energy_source == "wattserve" and obs.joules_per_token == pytest.approx(0.5)
    obs = collect(FakeClient(base), render(QueryTemplates(), "n", "m"))
    assert obs.energy_source is None and obs.joules_per_token is None


def test_energy_preference_is_configurable() -> None:
    t = QueryTemplates(energy_preference=(EnergySource.WATTSERVE, EnergySource.KEPLER))
    fake = FakeClient({"wattserve_generation_tokens": 10.0, "kepler_pod": 100.0,
                       "wattserve_energy": 20.0})
    assert collect(fake, render(t, "n", "m")).energy_source == "wattserve"


def test_joules_per_token_needs_positive_finite_token_rate() -> None:
    assert joules_per_token(100.0, None, 50.0) == 2.0
    assert joules_per_token(100.0, None, 0.0) is None
    assert joules_per_token(None, None, 5.0) is None
    assert joules_per_token(math.nan, None, 5.0) is None
