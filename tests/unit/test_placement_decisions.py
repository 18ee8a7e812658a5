"""Where models land, and why: the examples, pins, budgets and the load crossover."""

from __future__ import annotations

from dataclasses import replace

from wattserve.api import (
    Budget,
    EngineChoice,
    ExpectedLoad,
    ModelDeployment,
    Objective,
    PlacementPrefs,
    load_yaml_documents,
    parse_model_deployment,
)
from wattserve.planning import plan

from tests.unit.factories import EXAMPLES, example_pools, md_doc

POOLS = example_pools()


def example(name: str) -> ModelDeployment:
    return parse_model_deployment(load_yaml_documents((EXAMPLES / "models" / name).read_text())[0])


def with_spec(md: ModelDeployment, **changes: object) -> ModelDeployment:
    return replace(md, spec=replace(md.spec, **changes))  # type: ignore[arg-type]


def test_smollm2_lands_on_the_cpu_pool_with_llamacpp() -> None:
    result = plan(example("smollm2-135m.yaml"), POOLS)
    assert result.chosen is not None
    assert (result.chosen.pool, result.chosen.engine) == ("cpu-general", "llamacpp")
    assert result.chosen.threads >= 1 and result.chosen.tensor_parallel == 0
    # The GPU pools could serve it too, but cost more: the reason says so.
    losers = {c.pool: c for c in result.candidates if c.pool != "cpu-general"}
    # The 2-vCPU real node (cpu-local) cannot hold 2 req/s; it says how many replicas it needs.
    local = losers.pop("cpu-local")
    assert not local.feasible and "replicas" in local.reason, local.reason
    assert all(c.feasible and "vs" in c.reason for c in losers.values())
    assert all(c.usd_per_million_tokens > result.chosen.usd_per_million_tokens
               for c in losers.values())


def test_llama_70b_needs_tensor_parallel_h100s() -> None:
    for name, min_tp in (("llama-3.1-70b-bf16.yaml", 2), ("llama-3.1-70b-fp8.yaml", 1)):
        result = plan(example(name), POOLS)
        assert result.chosen is not None, result.reason
        assert result.chosen.pool == "gpu-h100"
        assert result.chosen.tensor_parallel >= min_tp
        assert result.chosen.memory_gib <= 80 * result.chosen.tensor_parallel
        cpu = next(c for c in result.candidates if c.pool == "cpu-general")
        assert not cpu.feasible and cpu.reason


def test_bf16_70b_needs_more_gpus_than_fp8() -> None:
    bf16 = plan(example("llama-3.1-70b-bf16.yaml"), POOLS).chosen
    fp8 = plan(example("llama-3.1-70b-fp8.yaml"), POOLS).chosen
    assert bf16 is not None and fp8 is not None
    assert bf16.tensor_parallel * bf16.replicas >= fp8.tensor_parallel * fp8.replicas
    assert bf16.usd_per_million_tokens > fp8.usd_per_million_tokens


def test_the_same_8b_model_is_placed_differently_at_low_and_high_load() -> None:
    low = plan(example("llama-3.1-8b-low-load.yaml"), POOLS)
    high = plan(example("llama-3.1-8b-high-load.yaml"), POOLS)
    assert low.chosen is not None and high.chosen is not None
    assert low.chosen.pool != high.chosen.pool
    # at low load the cheap small GPU wins; at high load it cannot keep up in its nodes
    assert low.chosen.pool == "gpu-l4" and high.chosen.pool == "gpu-h100"
    l4_high = next(c for c in high.candidates if c.pool == "gpu-l4")
    assert not l4_high.feasible and "nodes" in l4_high.reason


def test_cpu_wins_only_at_low_load_for_a_tiny_model() -> None:
    tiny = example("smollm2-135m.yaml")
    busy = with_spec(tiny, expected_load=ExpectedLoad(400.0, 64, 64),
                     scaling=replace(tiny.spec.scaling, max_replicas=200))
    quiet = plan(tiny, POOLS).chosen
    loaded = plan(busy, POOLS).chosen
    assert quiet is not None and quiet.pool == "cpu-general"
    assert loaded is not None and loaded.accelerator != "cpu"


def test_embedding_models_cost_no_generated_tokens() -> None:
    result = plan(example("embedding-minilm.yaml"), POOLS)
    assert result.chosen is not None
    assert result.chosen.predicted_p95_ms < 200


def test_a_pin_is_honoured_even_when_another_pool_is_cheaper() -> None:
    md = example("smollm2-135m.yaml")
    pinned = with_spec(md, placement=PlacementPrefs(pool="gpu-l4"))
    result = plan(pinned, POOLS)
    assert result.chosen is not None and result.chosen.pool == "gpu-l4"
    assert result.reason.startswith("pinned")
    cpu = next(c for c in result.candidates if c.pool == "cpu-general")
    assert "pinned to gpu-l4" in cpu.reason


def test_an_impossible_pin_explains_itself() -> None:
    md = example("llama-3.1-70b-bf16.yaml")
    result = plan(with_spec(md, placement=PlacementPrefs(pool="cpu-general")), POOLS)
    assert result.chosen is None
    assert "pinned pool 'cpu-general' is infeasible" in result.reason and "RAM" in result.reason
    missing = plan(with_spec(md, placement=PlacementPrefs(pool="nope")), POOLS)
    assert missing.chosen is None and "does not exist" in missing.reason


def test_disallowing_gpus_leaves_only_cpu() -> None:
    md = example("llama-3.1-8b-low-load.yaml")
    result = plan(with_spec(md, placement=PlacementPrefs(allow_gpu=False)), POOLS)
    assert result.chosen is None
    reasons = {c.pool: c.reason for c in result.candidates}
    assert "allowGPU" in reasons["gpu-l4"] and "fp8" in reasons["cpu-general"]


def test_engine_choice_filters_pools() -> None:
    md = example("smollm2-135m.yaml")
    result = plan(with_spec(md, placement=PlacementPrefs(engine=EngineChoice.VLLM)), POOLS)
    assert result.chosen is not None and result.chosen.engine == "vllm"


def test_budget_ceilings_exclude_pools_and_say_which_budget() -> None:
    md = example("llama-3.1-8b-low-load.yaml")
    result = plan(with_spec(md, budget=Budget(max_usd_per_hour=1.0)), POOLS)
    assert result.chosen is None
    assert all("maxUSDPerHour" in c.reason for c in result.candidates if c.accelerator != "cpu")
    energy = plan(with_spec(md, budget=Budget(max_joules_per_token=0.001)), POOLS)
    assert energy.chosen is None and "maxJoulesPerToken" in energy.reason


def test_objectives_rank_by_their_own_figure() -> None:
    md = example("smollm2-135m.yaml")
    for objective, attr in ((Objective.ENERGY, "joules_per_token"),
                            (Objective.CARBON, "grams_co2_per_million_tokens"),
                            (Objective.COST, "usd_per_million_tokens")):
        result = plan(with_spec(md, objective=objective), POOLS)
        assert result.chosen is not None
        best = min(getattr(c, attr) for c in result.candidates if c.feasible)
        assert getattr(result.chosen, attr) == best
    balanced = plan(with_spec(md, objective=Objective.BALANCED), POOLS)
    assert balanced.chosen is not None and balanced.reason.startswith("lowest balanced")


def test_no_pools_and_an_unservable_model_give_reasons() -> None:
    md = parse_model_deployment(md_doc())
    assert plan(md, []).reason == "no ServingPools exist"
    huge = parse_model_deployment(md_doc(model={"name": "x", "source": "hf://a/b",
                                                "parameters": "2T", "quantization": "bf16"}))
    result = plan(huge, POOLS)
    assert result.chosen is None
    assert all(c.reason for c in result.candidates)
    assert result.reason.startswith("no pool can serve this model")


def test_a_tight_slo_is_reported_as_an_slo_miss() -> None:
    md = example("llama-3.1-70b-bf16.yaml")
    result = plan(with_spec(md, slo=replace(md.spec.slo, latency_p95_ms=500,
                                            ttft_p95_ms=None)), POOLS)
    h100 = next(c for c in result.candidates if c.pool == "gpu-h100")
    assert not h100.feasible and "SLO" in h100.reason



def test_an_embedding_model_goes_where_its_slo_allows_cpu_or_gpu() -> None:
    """Both engines embed (/v1/embeddings: llama.cpp, vLLM's pooling runner)."""
    doc = load_yaml_documents((EXAMPLES / "models" / "embedding-minilm.yaml").read_text())[0]
    md = parse_model_deployment(doc)
    chosen = plan(md, example_pools()).chosen
    assert chosen is not None and (chosen.pool, chosen.engine) == ("cpu-general", "llamacpp")
    doc["spec"]["slo"]["latencyP95Ms"] = 2  # only a GPU answers this fast
    chosen = plan(parse_model_deployment(doc), example_pools()).chosen
    assert chosen is not None and chosen.engine == "vllm"
    # One engine step (1 ms) is the floor of any request, a prefill-only one included.
    assert 1.0 < chosen.predicted_p95_ms < 2.0
    doc["spec"]["slo"]["latencyP95Ms"] = 1
    assert plan(parse_model_deployment(doc), example_pools()).chosen is None
