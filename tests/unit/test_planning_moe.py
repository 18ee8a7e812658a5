"""Mixtures of experts (`spec.model.activeParameters`) and the weight formats beyond the
first ten: memory by every parameter, compute and the weights read per token by the
active ones; the batched operating point still obeys Little's law."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from wattserve.api import (
    ModelDeployment,
    Quantization,
    SpecError,
    load_yaml_documents,
    parse_model_deployment,
)
from wattserve.cli.main import main
from wattserve.planning import constants as c
from wattserve.planning import plan
from wattserve.planning.memory import cpu_fit, kv_bytes_per_token, weight_bytes
from wattserve.planning.performance import ReplicaPerformance, operating_point
from wattserve.planning.shapes import shapes_for

from tests.unit.factories import EXAMPLES, example_pools, md_doc

MOE = EXAMPLES / "moe"


def _md(parameters: str, active: str | None = None, quantization: str = "q4_k_m",
        rps: str = "0.05", slo_ms: int = 30000) -> ModelDeployment:
    model = {"name": "m", "source": "hf://org/m", "parameters": parameters,
             "quantization": quantization, "contextLength": 8192}
    if active is not None:
        model["activeParameters"] = active
    return parse_model_deployment(md_doc(
        model=model, slo={"latencyP95Ms": slo_ms},
        expectedLoad={"requestsPerSecond": rps, "promptTokens": 256, "outputTokens": 128}))


def _cpu_perf(md: ModelDeployment) -> ReplicaPerformance:
    pool = next(p for p in example_pools() if p.name == "cpu-general")
    perf = next(s for s in shapes_for(md.spec.model, pool, "llamacpp", 0)
                if s.threads == 8).performance
    assert perf is not None
    return perf


def test_memory_counts_every_parameter_compute_only_the_active_ones() -> None:
    moe, dense = _md("30B", "3B"), _md("30B")
    assert weight_bytes(moe.spec.model) == weight_bytes(dense.spec.model)
    assert cpu_fit(moe.spec.model, 64).weights_gib == cpu_fit(dense.spec.model, 64).weights_gib
    m, d = _cpu_perf(moe), _cpu_perf(dense)
    assert m.flops_per_token == pytest.approx(2 * 3e9)
    assert m.prefill_tps == pytest.approx(10 * d.prefill_tps)
    # One sequence reads exactly its active weights: the speed of a dense 3B model.
    small = _cpu_perf(_md("3B"))
    assert m.weights_read(1) == pytest.approx(weight_bytes(_md("3B").spec.model))
    assert m.decode_tps_single == pytest.approx(small.decode_tps_single)
    assert m.decode_tps_single > 9 * d.decode_tps_single


def test_a_batch_reads_more_of_the_experts_up_to_all_of_them() -> None:
    perf = _cpu_perf(_md("30B", "3B"))
    reads = [perf.weights_read(b) for b in (1, 2, 4, 16, 64, 512)]
    assert reads == sorted(reads) and reads[0] < reads[1]
    assert reads[-1] == pytest.approx(perf.weight_bytes, rel=1e-6)
    assert all(r <= perf.weight_bytes for r in reads)


def test_a_dense_model_is_unchanged_by_the_moe_model() -> None:
    """activeParameters equal to parameters is a dense model: the same figures."""
    dense, same = _md("8B", quantization="fp8"), _md("8B", "8B", quantization="fp8")
    a, b = plan(dense, example_pools()).chosen, plan(same, example_pools()).chosen
    assert a is not None and b is not None
    assert a.performance is not None and a.performance.active_fraction == 1.0
    assert a == b


def test_kv_cache_is_estimated_from_the_active_size() -> None:
    """A 30B-A3B's attention is a ~3B model's: its KV estimate is that of the active size."""
    assert kv_bytes_per_token(_md("30B", "3B").spec.model) == kv_bytes_per_token(
        _md("3B").spec.model)


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.05, 40.0), active=st.sampled_from(["1B", "3B", "13B"]))
def test_batched_moe_operating_point_obeys_littles_law(rate: float, active: str) -> None:
    md = _md("47B", active, quantization="fp8")
    pool = next(p for p in example_pools() if p.name == "gpu-h100")
    perf = next(s.performance for s in shapes_for(md.spec.model, pool, "vllm", 384)
                if s.performance is not None)
    point = operating_point(perf, rate, 256, 128)
    if math.isinf(point.mean_latency_s):
        return  # overloaded
    if point.mean_batch > 1.0:
        assert point.mean_batch == pytest.approx(rate * point.mean_latency_s, rel=1e-6)


def test_a_busy_moe_replica_batches_and_its_steps_slow_down() -> None:
    md = _md("47B", "13B", quantization="fp8")
    pool = next(p for p in example_pools() if p.name == "gpu-h100")
    perf = next(s.performance for s in shapes_for(md.spec.model, pool, "vllm", 384)
                if s.performance is not None)
    light, busy = operating_point(perf, 1.0, 256, 128), operating_point(perf, 20.0, 256, 128)
    assert busy.mean_batch > 4 and busy.mean_batch == pytest.approx(
        20.0 * busy.mean_latency_s, rel=1e-6)
    assert busy.mean_latency_s > light.mean_latency_s


def test_moe_on_cpu_beats_the_gpu_where_the_dense_model_cannot_run_there() -> None:
    docs = load_yaml_documents((MOE / "gpt-oss-20b.yaml").read_text())
    moe = parse_model_deployment(docs[0])
    chosen = plan(moe, example_pools()).chosen
    assert chosen is not None and (chosen.pool, chosen.engine) == ("cpu-general", "llamacpp")
    dense = dataclasses.replace(moe.spec.model, active_parameters=None)
    dense_md = dataclasses.replace(moe, spec=dataclasses.replace(moe.spec, model=dense))
    result = plan(dense_md, example_pools())
    cpu = next(c for c in result.candidates if c.pool == "cpu-general")
    assert result.chosen is not None and result.chosen.pool != "cpu-general"
    assert not cpu.feasible


# What each example's comment says about where it goes.
EXPECTED_POOLS = {"gpt-oss-20b": "cpu-general", "qwen3-30b-a3b": "gpu-l4"}


def test_moe_examples_place_as_their_comments_say() -> None:
    assert sorted(p.stem for p in MOE.glob("*.yaml")) == sorted(EXPECTED_POOLS)
    for name, pool in EXPECTED_POOLS.items():
        md = parse_model_deployment(yaml.safe_load((MOE / f"{name}.yaml").read_text()))
        chosen = plan(md, example_pools()).chosen
        assert chosen is not None and chosen.pool == pool, (name, chosen)


def test_active_above_total_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError) as err:
        _md("8B", "9B")
    assert err.value.path.endswith("model.activeParameters")


def test_cli_names_active_parameters_and_exits_2(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    doc = md_doc(model={"name": "m", "source": "hf://org/m", "parameters": "1B",
                        "activeParameters": "2B"})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["plan", "-f", str(path), "--pools", str(EXAMPLES / "pools.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "activeParameters" in err[0]


@pytest.mark.parametrize("quantization", list(Quantization), ids=str)
def test_every_weight_format_has_a_size_and_an_engine(quantization: Quantization) -> None:
    assert 0 < c.BYTES_PER_PARAMETER[quantization] <= 4
    assert quantization in c.LLAMACPP_FORMATS | c.VLLM_FORMATS
    if quantization in (Quantization.INT4, Quantization.FP8, Quantization.INT8):
        assert quantization not in c.LLAMACPP_FORMATS  # safetensors checkpoints: vLLM's


def test_int4_on_a_gpu_reads_a_quarter_of_bf16() -> None:
    int4, bf16 = _md("8B", quantization="int4"), _md("8B", quantization="bf16")
    assert weight_bytes(int4.spec.model) / weight_bytes(bf16.spec.model) == pytest.approx(
        4.156 / 16, rel=1e-3)
    chosen = plan(int4, example_pools()).chosen
    assert chosen is not None and chosen.engine == "vllm"
