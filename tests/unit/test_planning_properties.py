"""Properties of the placement engine over generated models, loads and SLOs."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from wattserve.api import (
    SLO,
    Architecture,
    ExpectedLoad,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelSpec,
    Objective,
    Quantization,
    Scaling,
)
from wattserve.planning import plan
from wattserve.planning.economics import Targets, capacity_rps, replicas_needed
from wattserve.planning.memory import cpu_fit, gpu_fit, weight_bytes
from wattserve.planning.shapes import shapes_for

from tests.unit.factories import example_pools

POOLS = example_pools()

params = st.integers(min_value=10_000_000, max_value=500_000_000_000)
quants = st.sampled_from(list(Quantization))
rates = st.floats(min_value=0.01, max_value=200.0, allow_nan=False)
slos = st.integers(min_value=50, max_value=120_000)
lengths = st.integers(min_value=1, max_value=2048)


def make_md(parameters: int, quant: Quantization, rate: float, slo_ms: int, prompt: int,
            output: int, objective: Objective = Objective.COST) -> ModelDeployment:
    return ModelDeployment(
        name="p", namespace="ns",
        spec=ModelDeploymentSpec(
            model=ModelSpec(name="m", source="hf://a/b", parameters=parameters,
                            quantization=quant, context_length=4096),
            slo=SLO(latency_p95_ms=slo_ms),
            objective=objective,
            expected_load=ExpectedLoad(rate, prompt, output),
            scaling=Scaling(max_replicas=1000),
        ),
    )


@settings(max_examples=150, deadline=None)
@given(params, quants, rates, rates, slos, lengths, lengths)
def test_more_load_never_gives_a_cheaper_plan(parameters: int, quant: Quantization, r1: float,
                                              r2: float, slo: int, prompt: int,
                                              output: int) -> None:
    low, high = sorted((r1, r2))
    a = plan(make_md(parameters, quant, low, slo, prompt, output), POOLS).chosen
    b = plan(make_md(parameters, quant, high, slo, prompt, output), POOLS).chosen
    if b is not None:
        assert a is not None, "feasible at high load but not at low load"
        assert b.usd_per_hour >= a.usd_per_hour * (1 - 1e-9)


@settings(max_examples=150, deadline=None)
@given(params, quants, rates, rates, slos, lengths, lengths)
def test_more_load_never_gives_fewer_replicas_of_a_shape(parameters: int, quant: Quantization,
                                                         r1: float, r2: float, slo: int,
                                                         prompt: int, output: int) -> None:
    low, high = sorted((r1, r2))
    model = make_md(parameters, quant, low, slo, prompt, output).spec.model
    targets = Targets(slo / 1000, None, 0.7)
    for pool in POOLS:
        for shape in shapes_for(model, pool, "vllm" if pool.spec.is_gpu else "llamacpp",
                                prompt + output):
            if shape.problem is not None or shape.performance is None:
                continue
            perf = shape.performance
            cap = capacity_rps(perf, prompt, output, targets)
            n_low = replicas_needed(perf, low, prompt, output, targets, cap, 1, 10**6)
            n_high = replicas_needed(perf, high, prompt, output, targets, cap, 1, 10**6)
            if n_high is not None:
                assert n_low is not None and n_low <= n_high


@settings(max_examples=200, deadline=None)
@given(params, params, quants, st.integers(min_value=128, max_value=131072))
def test_more_parameters_never_need_less_memory(p1: int, p2: int, quant: Quantization,
                                                context: int) -> None:
    small, big = sorted((p1, p2))
    arch = Architecture(layers=32, hidden_size=4096, attention_heads=32, kv_heads=8)
    a = ModelSpec(name="m", source="hf://a/b", parameters=small, quantization=quant,
                  context_length=context, architecture=arch)
    b = replace(a, parameters=big)
    assert weight_bytes(b) >= weight_bytes(a)
    assert cpu_fit(b, 64).needed_gib >= cpu_fit(a, 64).needed_gib
    assert gpu_fit(b, 80, 1, 512).needed_gib >= gpu_fit(a, 80, 1, 512).needed_gib
    # and without hints, the estimated shape keeps the weights monotone too
    a0, b0 = replace(a, architecture=Architecture()), replace(b, architecture=Architecture())
    assert cpu_fit(b0, 64).weights_gib >= cpu_fit(a0, 64).weights_gib


@settings(max_examples=150, deadline=None)
@given(params, quants, rates, slos, slos, lengths, lengths)
def test_a_tighter_slo_never_gives_a_cheaper_plan(parameters: int, quant: Quantization,
                                                  rate: float, s1: int, s2: int, prompt: int,
                                                  output: int) -> None:
    tight, loose = sorted((s1, s2))
    a = plan(make_md(parameters, quant, rate, tight, prompt, output), POOLS).chosen
    b = plan(make_md(parameters, quant, rate, loose, prompt, output), POOLS).chosen
    if a is not None:
        assert b is not None, "feasible with a tight SLO but not with a loose one"
        assert a.usd_per_hour >= b.usd_per_hour * (1 - 1e-9)


@settings(max_examples=200, deadline=None)
@given(params, quants, rates, slos, lengths, lengths, st.sampled_from(list(Objective)))
def test_infeasible_plans_always_give_a_reason(parameters: int, quant: Quantization,
                                               rate: float, slo: int, prompt: int, output: int,
                                               objective: Objective) -> None:
    result = plan(make_md(parameters, quant, rate, slo, prompt, output, objective), POOLS)
    assert result.reason
    for cand in result.candidates:
        assert cand.reason
        if cand.feasible:
            assert cand.predicted_p95_ms <= slo * (1 + 1e-9)
            assert cand.replicas >= 1
    if result.chosen is None:
        assert all(not c.feasible for c in result.candidates)
