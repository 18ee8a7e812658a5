"""Memory, roofline and queueing formulas of the placement model."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from wattserve.api import Architecture, ModelSpec, Quantization
from wattserve.planning import constants as c
from wattserve.planning.memory import (
    cpu_fit,
    gpu_fit,
    kv_bytes_per_token,
    model_shape,
    weight_bytes,
)
from wattserve.planning.performance import ReplicaPerformance, operating_point

LLAMA_8B = ModelSpec(name="l", source="hf://x/y", parameters=8_000_000_000,
                     quantization=Quantization.BF16, context_length=8192,
                     architecture=Architecture(layers=32, hidden_size=4096, attention_heads=32,
                                               kv_heads=8))


def test_weights_are_parameters_times_bytes_per_parameter() -> None:
    assert weight_bytes(LLAMA_8B) == 16e9
    assert weight_bytes(replace(LLAMA_8B, quantization=Quantization.FP8)) == 8e9
    assert weight_bytes(replace(LLAMA_8B, quantization=Quantization.Q4_0)) == 8e9 * 18 / 32


def test_kv_cache_per_token_of_llama_8b_is_128_kib() -> None:
    # 2 (K and V) × 32 layers × 8 KV heads × 128 head dim × 2 bytes = 131072 bytes
    assert kv_bytes_per_token(LLAMA_8B) == 131072


def test_shape_estimate_without_hints_is_close_to_llama() -> None:
    shape = model_shape(replace(LLAMA_8B, architecture=Architecture()))
    assert 28 <= shape.layers <= 40
    assert 3500 <= shape.hidden_size <= 5000
    assert shape.kv_heads == max(1, round(shape.attention_heads * c.DEFAULT_GQA_RATIO))


def test_gpu_fit_needs_room_for_one_full_context() -> None:
    fits = gpu_fit(LLAMA_8B, 24, 1, 512)  # 16 GB of weights on a 24 GiB L4
    assert fits.fits and fits.max_sequences >= 1
    assert not gpu_fit(LLAMA_8B, 16, 1, 512).fits  # 16 GiB card: weights alone overflow
    assert gpu_fit(LLAMA_8B, 24, 2, 512).max_sequences > fits.max_sequences
    assert gpu_fit(LLAMA_8B, 80, 8, 512).max_sequences == c.GPU_MAX_BATCH


def test_cpu_fit_counts_weights_kv_and_overhead() -> None:
    fit = cpu_fit(LLAMA_8B, 64)
    expected = 16e9 / c.GIB + 131072 * 8192 / c.GIB + c.CPU_RUNTIME_OVERHEAD_GIB
    assert math.isclose(fit.needed_gib, expected)
    assert fit.fits and not cpu_fit(LLAMA_8B, 8).fits


def _perf(max_concurrency: int = 64, **kw: float) -> ReplicaPerformance:
    base = dict(engine="vllm", weight_bytes=16e9, kv_bytes_per_sequence=50e6,
                flops_per_token=16e9, bandwidth_bytes_s=2e12, compute_flops_s=400e12,
                prefill_tps=10_000.0, max_concurrency=max_concurrency, step_overhead_s=0.0,
                cold_start_s=1.0, idle_watts=100.0, max_watts=700.0, usd_per_hour=4.0,
                grams_co2_per_kwh=400.0)
    base.update(kw)
    return ReplicaPerformance(**base)  # type: ignore[arg-type]


def test_decode_step_is_memory_bound_at_batch_one() -> None:
    perf = _perf()
    assert math.isclose(perf.step_seconds(1), (16e9 + 50e6) / 2e12)
    assert math.isclose(perf.decode_tps_single, 1 / perf.step_seconds(1))


def test_batching_raises_throughput_until_compute_bound() -> None:
    perf = _perf(max_concurrency=1024)
    tps = [b / perf.step_seconds(b) for b in (1, 8, 64, 512, 1024)]
    assert tps == sorted(tps)
    compute_ceiling = perf.compute_flops_s / perf.flops_per_token
    assert tps[-1] <= compute_ceiling * 1.0001
    assert tps[-1] / tps[-2] < 1.2  # flattened: compute-bound


def test_per_stream_speed_falls_as_streams_share_a_replica() -> None:
    perf = _perf(max_concurrency=8)
    assert perf.per_stream_tps(1) > perf.per_stream_tps(8) > perf.per_stream_tps(16)
    assert math.isclose(perf.per_stream_tps(16), perf.per_stream_tps(8) / 2)


def test_serial_replica_latency_follows_pollaczek_khinchine() -> None:
    perf = _perf(max_concurrency=1, prefill_tps=1000.0)
    service = 100 / 1000 + 50 * perf.step_seconds(1)
    point = operating_point(perf, 0.5 / service, 100, 50)  # ρ = 0.5
    wait = service * 0.5 / 0.5 * (1 + c.SERVICE_SCV) / 2
    assert math.isclose(point.utilization, 0.5)
    assert math.isclose(point.mean_latency_s, service + wait)
    assert math.isclose(point.p95_latency_s,
                        c.SERVICE_P95_OVER_MEAN * service + c.QUEUE_WAIT_P95_OVER_MEAN * wait)
    assert not operating_point(perf, 1.01 / service, 100, 50).stable


def test_batched_replica_satisfies_littles_law() -> None:
    perf = _perf()
    point = operating_point(perf, 2.0, 256, 128)
    assert point.stable
    assert math.isclose(point.mean_batch, 2.0 * point.mean_latency_s, rel_tol=1e-6)
    heavier = operating_point(perf, 8.0, 256, 128)
    assert heavier.mean_latency_s > point.mean_latency_s
    assert heavier.power_watts > point.power_watts


def test_power_runs_from_idle_to_max_with_utilization() -> None:
    perf = _perf()
    assert perf.power_watts(0) == 100 and perf.power_watts(1) == 700
    assert perf.power_watts(-1) == 100 and perf.power_watts(2) == 700


@pytest.mark.parametrize("quant", list(Quantization))
def test_every_quantization_has_bytes_and_an_engine(quant: Quantization) -> None:
    assert c.BYTES_PER_PARAMETER[quant] > 0
    assert quant in c.LLAMACPP_FORMATS or quant in c.VLLM_FORMATS
