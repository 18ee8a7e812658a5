"""Models and pools this repository does not ship, planned as vLLM and the hardware would
run them: a head dimension apart from hidden / heads (Qwen3), tensor-parallel sizes vLLM
refuses, a zero-carbon pool under `balanced`, a CPU replica too big for its node's memory,
and the one-step floor of a prefill-only (embedding) request."""

from __future__ import annotations

from typing import Any

import pytest
from wattserve.api import parse_model_deployment, parse_serving_pool
from wattserve.api.errors import SpecError
from wattserve.planning import plan
from wattserve.planning.memory import kv_bytes_per_token
from wattserve.planning.shapes import heads_problem

from tests.unit.factories import example_pools


def _md(model: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": model["name"], "namespace": "default"},
            "spec": {"model": model, "slo": {"latencyP95Ms": 30000}, "objective": "cost",
                     "expectedLoad": {"requestsPerSecond": "0.5", "promptTokens": 2048,
                                      "outputTokens": 512}} | spec}


def _pool(name: str, *, gpus: int = 1, memory: int = 48, bandwidth: int = 864,
          tflops: str = "362", usd: str = "1.861", co2: int = 481, cpu: int = 4,
          ram: int = 32, gpu: bool = True) -> Any:
    spec: dict[str, Any] = {
        "node": {"cpu": cpu, "memoryGiB": ram, "memoryBandwidthGBps": 50},
        "pricing": {"usdPerNodeHour": usd}, "power": {"idleWatts": 100, "maxWatts": 450},
        "carbon": {"gramsCO2PerKWh": co2}, "maxNodes": 10}
    if gpu:
        spec["accelerator"] = {"type": "nvidia-l40s", "count": gpus, "memoryGiB": memory,
                               "memoryBandwidthGBps": bandwidth, "peakTFLOPS": tflops}
    return parse_serving_pool({"apiVersion": "wattserve.dev/v1alpha1", "kind": "ServingPool",
                               "metadata": {"name": name}, "spec": spec})


QWEN3_30B = {"name": "qwen3-30b-a3b", "source": "hf://Qwen/Qwen3-30B-A3B-Instruct-2507",
             "parameters": "30.5B", "activeParameters": "3.3B", "quantization": "bf16",
             "contextLength": 262144,
             "architecture": {"layers": 48, "hiddenSize": 2048, "attentionHeads": 32,
                              "kvHeads": 4, "headDim": 128}}


def test_a_head_dimension_hint_sizes_the_kv_cache_as_vllm_does() -> None:
    md = parse_model_deployment(_md(QWEN3_30B))
    assert kv_bytes_per_token(md.spec.model) == 2 * 48 * 4 * 128 * 2  # not hidden / heads
    # 57 GiB of weights and 24 GiB for one 256k sequence: one 80 GB H100 cannot hold both.
    chosen = plan(md, example_pools()).chosen
    assert chosen is not None and chosen.pool == "gpu-h100" and chosen.tensor_parallel == 2
    bad = _md(QWEN3_30B | {"architecture": {"headDim": 0}})
    with pytest.raises(SpecError, match="headDim"):
        parse_model_deployment(bad)


@pytest.mark.parametrize(("heads", "kv", "tp", "refused"), [
    (28, 4, 8, True),    # Qwen2.5-7B: 28 heads over 8 GPUs
    (28, 4, 4, False),
    (9, 3, 2, True),     # SmolLM2-135M
    (32, 8, 8, False),
    (48, 6, 4, True),    # 6 KV heads over 4 GPUs
    (64, 2, 8, False),   # fewer KV heads than GPUs: vLLM replicates them
    (None, None, 8, False),  # no hints: not held against a shape
])
def test_tensor_parallel_sizes_vllm_refuses_are_not_planned(
        heads: int | None, kv: int | None, tp: int, refused: bool) -> None:
    arch = {k: v for k, v in (("attentionHeads", heads), ("kvHeads", kv)) if v is not None}
    md = parse_model_deployment(_md({"name": "m", "source": "hf://o/m", "parameters": "7B",
                                     "architecture": arch}))
    problem = heads_problem(md.spec.model, tp)
    assert (problem is not None) is refused
    if refused:
        assert problem is not None and f"TP {tp}" in problem and "vLLM refuses" in problem


def test_a_long_prompt_model_is_not_given_a_tensor_parallel_size_vllm_refuses() -> None:
    qwen = {"name": "qwen2.5-7b", "source": "hf://Qwen/Qwen2.5-7B-Instruct",
            "parameters": "7.6B", "contextLength": 32768,
            "architecture": {"layers": 28, "hiddenSize": 3584, "attentionHeads": 28,
                             "kvHeads": 4}}
    md = parse_model_deployment(_md(qwen, slo={"latencyP95Ms": 10000,
                                               "timeToFirstTokenP95Ms": 2000},
                                    expectedLoad={"requestsPerSecond": "1",
                                                  "promptTokens": 16000, "outputTokens": 128}))
    l4x8 = _pool("gpu-l4x8", gpus=8, memory=24, bandwidth=300, tflops="121", usd="13.35",
                 cpu=192, ram=768)
    result = plan(md, [l4x8])
    assert result.chosen is not None and result.chosen.tensor_parallel in (1, 2, 4)


def test_balanced_prefers_a_zero_carbon_pool_and_says_all_three_figures() -> None:
    mistral = {"name": "mistral-7b", "source": "hf://mistralai/Mistral-7B-Instruct-v0.3",
               "parameters": "7.2B", "contextLength": 8192}
    md = parse_model_deployment(_md(mistral, objective="balanced",
                                    slo={"latencyP95Ms": 15000},
                                    expectedLoad={"requestsPerSecond": "2",
                                                  "promptTokens": 512, "outputTokens": 256}))
    grid = _pool("gpu-l40s")
    for co2 in (1, 0):  # cleaner never loses: at 0 the axis used to drop out
        hydro = _pool("l40s-hydro", usd="3.722", co2=co2)
        result = plan(md, [grid, hydro])
        assert result.chosen is not None and result.chosen.pool == "l40s-hydro", co2
    lost = next(c for c in result.candidates if c.pool == "gpu-l40s")
    assert "J/token" in lost.reason and "gCO2/1M tokens" in lost.reason and "$" in lost.reason


def test_a_cpu_replica_too_big_for_the_node_memory_says_memory() -> None:
    llama = {"name": "llama-3.2-1b", "source": "hf://meta-llama/Llama-3.2-1B-Instruct",
             "parameters": "1.24B", "contextLength": 8192,
             "architecture": {"layers": 16, "hiddenSize": 2048, "attentionHeads": 32,
                              "kvHeads": 8}}
    md = parse_model_deployment(_md(llama, slo={"latencyP95Ms": 5000}))
    small = _pool("cpu-small", gpu=False, cpu=2, ram=4, usd="0.0832")
    cand = plan(md, [small]).candidates[0]
    assert not cand.feasible
    assert cand.reason.startswith("a replica requests 4 GiB of memory") \
        and "a node offers 3.6 GiB" in cand.reason


def test_fp8_computes_at_the_pools_fp8_peak_or_at_bf16_speed_without_one() -> None:
    """A100, A10G, T4 have no FP8 tensor cores: vLLM runs FP8 weights as W8A16 (BF16
    compute), so only a pool that states peakTFLOPSFP8 gets FP8's faster prefill."""
    from wattserve.planning.shapes import shapes_for

    def prefill_tps(quantization: str, pool: Any) -> float:
        md = parse_model_deployment(_md({"name": "llama-8b", "source": "hf://o/m",
                                         "parameters": "8B", "quantization": quantization,
                                         "contextLength": 8192}))
        shape = next(shapes_for(md.spec.model, pool, "vllm", 2560))
        assert shape.performance is not None
        return shape.performance.prefill_tps

    a100 = _pool("gpu-a100", memory=80, bandwidth=2039, tflops="312")
    assert prefill_tps("fp8", a100) == pytest.approx(prefill_tps("bf16", a100))
    h100 = parse_serving_pool({
        "apiVersion": "wattserve.dev/v1alpha1", "kind": "ServingPool",
        "metadata": {"name": "gpu-h100"},
        "spec": {"accelerator": {"type": "nvidia-h100", "count": 1, "memoryGiB": 80,
                                 "memoryBandwidthGBps": 3350, "peakTFLOPS": "989",
                                 "peakTFLOPSFP8": "1978"},
                 "node": {"cpu": 24, "memoryGiB": 256, "memoryBandwidthGBps": 300},
                 "pricing": {"usdPerNodeHour": "6.88"},
                 "power": {"idleWatts": 100, "maxWatts": 850},
                 "carbon": {"gramsCO2PerKWh": 481}, "maxNodes": 4}})
    assert prefill_tps("fp8", h100) == pytest.approx(2 * prefill_tps("bf16", h100))


def test_pools_the_gpu_image_cannot_drive_are_left_out_and_say_why(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The GPU serving image is vLLM's CUDA build: an AMD or Gaudi pool is not planned
    (it was chosen first when cheapest, and its pods could not run) unless the operator is
    told of an image for it."""
    from dataclasses import replace as copy

    from wattserve.cli.plan_cmd import _usable
    from wattserve.render.settings import SettingsError, settings_from_env

    nvidia = _pool("gpu-l40s")
    acc = nvidia.spec.accelerator
    assert acc is not None
    amd = copy(nvidia, name="gpu-mi300x",
               spec=copy(nvidia.spec, accelerator=copy(acc, resource_name="amd.com/gpu")))
    default = settings_from_env({})
    assert default.accelerator_problem(nvidia) is None
    problem = default.accelerator_problem(amd)
    assert problem is not None and problem.startswith(
        "spec.accelerator.resourceName: amd.com/gpu: the GPU serving image")
    assert [p.name for p in _usable([nvidia, amd])] == ["gpu-l40s"]
    assert "ServingPool gpu-mi300x left out" in capsys.readouterr().err
    rocm = settings_from_env({"WATTSERVE_SERVING_IMAGE_GPU": "example.com/vllm-rocm:1",
                              "WATTSERVE_SERVING_GPU_RESOURCES": "amd.com/gpu"})
    assert rocm.accelerator_problem(amd) is None and rocm.accelerator_problem(nvidia)
    with pytest.raises(SettingsError, match="WATTSERVE_SERVING_GPU_RESOURCES: 'memory'"):
        settings_from_env({"WATTSERVE_SERVING_GPU_RESOURCES": "memory"})


def test_the_operator_ignores_such_a_pool_with_the_reason_on_its_status() -> None:
    from unittest.mock import create_autospec

    from wattserve.controller.config import OperatorConfig
    from wattserve.controller.kubeapi import KubeApi
    from wattserve.controller.reconciler import Reconciler
    from wattserve.render.settings import RenderSettings

    from tests.unit.factories import example_pool_docs

    doc = next(d for d in example_pool_docs() if d["metadata"]["name"] == "gpu-h100")
    doc["spec"]["accelerator"]["resourceName"] = "amd.com/gpu"
    api = create_autospec(KubeApi, instance=True)
    rec = Reconciler(api, OperatorConfig())
    rec.pool_upsert(doc)
    assert "gpu-h100" not in rec.pools
    seen = rec.pools_seen["gpu-h100"]
    assert seen.error is not None and "amd.com/gpu" in seen.error
    from wattserve.reconcile.poolstatus import pool_status
    accepted = pool_status(seen, None, [], "2026-12-03T00:00:00Z")["conditions"][0]
    assert (accepted["status"], accepted["reason"]) == ("False", "UnsupportedAccelerator")
    rocm = Reconciler(api, OperatorConfig(render=RenderSettings(
        gpu_resources=frozenset({"amd.com/gpu"}))))
    rocm.pool_upsert(doc)
    assert "gpu-h100" in rocm.pools and rocm.pools_seen["gpu-h100"].error is None
