"""Replica shapes a pool can offer a model: llama.cpp threads on CPU, vLLM tensor
parallelism on GPU, each with its memory fit, resources and roofline performance."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from wattserve.api.types import ModelSpec, Quantization, ServingPool, Task
from wattserve.planning import constants as c
from wattserve.planning.memory import (
    MemoryFit,
    cpu_fit,
    gpu_fit,
    kv_bytes_per_token,
    weight_bytes,
)
from wattserve.planning.performance import ReplicaPerformance


@dataclass(frozen=True)
class Shape:
    """One way to run a replica on a pool; ``problem`` is set when it cannot work."""

    pool: ServingPool
    engine: str
    threads: int  # CPU threads (llama.cpp) or host CPUs requested (GPU)
    tensor_parallel: int  # GPUs per replica; 0 on CPU pools
    memory: MemoryFit
    cpu_request: int  # whole CPUs: the CPU limit on CPU pools
    memory_request_gib: int
    replicas_per_node: int
    performance: ReplicaPerformance | None
    problem: str | None = None
    cpu_request_millis: int = 0  # the CPU request in millicores; 0 = cpu_request x 1000


def engines_for(model: ModelSpec, pool: ServingPool) -> list[str]:
    """Engines that can serve this weight format on this kind of pool."""
    if pool.spec.is_gpu:
        return [c.ENGINE_VLLM] if model.quantization in c.VLLM_FORMATS else []
    return [c.ENGINE_LLAMACPP] if model.quantization in c.LLAMACPP_FORMATS else []


class _Made:
    """One key's shapes, made on demand and kept: evaluate_pool usually stops after the
    first few, so later shapes are only made when a model asks for them."""

    __slots__ = ("lock", "made", "rest")

    def __init__(self, rest: Iterator[Shape]) -> None:
        self.made: list[Shape] = []
        self.rest: Iterator[Shape] | None = rest
        self.lock = threading.Lock()  # the operator may plan from more than one thread

    def __iter__(self) -> Iterator[Shape]:
        index = 0
        while True:
            if index < len(self.made):
                yield self.made[index]
                index += 1
                continue
            with self.lock:
                if index < len(self.made):
                    continue
                if self.rest is None:
                    return
                shape = next(self.rest, None)
                if shape is None:
                    self.rest = None
                    return
                self.made.append(shape)


# Memo of shapes_for: a fleet repeats the same model dimensions on the same pools, and a
# shape depends on nothing else. Bounded (cleared when full); shapes are immutable.
_SHAPES: dict[tuple[object, ...], _Made] = {}
_SHAPES_MAX = 16384


def shapes_for(model: ModelSpec, pool: ServingPool, engine: str,
               typical_tokens: int) -> Iterator[Shape]:
    """The shapes the pool offers, smallest first (memoised per model dimensions, pool,
    engine and, on GPUs, the typical sequence length)."""
    is_gpu = pool.spec.is_gpu
    key = (model.parameters, model.active_parameters, model.quantization, model.context_length,
           model.architecture, pool, engine, typical_tokens if is_gpu else 0)
    entry = _SHAPES.get(key)
    if entry is None:
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        entry = _SHAPES[key] = _Made(_gpu_shapes(model, pool, engine, typical_tokens)
                                     if is_gpu else _cpu_shapes(model, pool, engine))
    return iter(entry)


def heads_problem(model: ModelSpec, tp: int) -> str | None:
    """Why vLLM refuses tensor parallelism `tp` for the model's heads (only when the spec
    gives them; estimated heads are not held against a shape), else None."""
    arch = model.architecture
    if tp == 1:
        return None
    if arch.attention_heads is not None and arch.attention_heads % tp:
        return (f"TP {tp} does not divide the {arch.attention_heads} attention heads "
                "(vLLM refuses it)")
    kv = arch.kv_heads
    if kv is not None and (kv % tp if kv >= tp else tp % kv):
        return f"TP {tp} does not split the {kv} KV heads evenly (vLLM refuses it)"
    return None


def _cpu_shapes(model: ModelSpec, pool: ServingPool, engine: str) -> Iterator[Shape]:
    spec = pool.spec
    usable = spec.node.cpu - c.CPU_NODE_RESERVED_CORES if spec.node.cpu > 1 else spec.node.cpu
    options = [t for t in c.CPU_THREAD_OPTIONS if t <= usable]
    if usable not in options and usable > (options[-1] if options else 0):
        options.append(usable)
    fit = cpu_fit(model, spec.node.memory_gib * 0.9)
    memory_request = max(1, math.ceil(fit.needed_gib * 1.2))
    tuning = spec.tuning
    decode_gflops = tuning.cpu_decode_gflops_per_core or c.CPU_DECODE_GFLOPS_PER_CORE
    prefill_gflops = tuning.cpu_prefill_gflops_per_core or c.CPU_PREFILL_GFLOPS_PER_CORE
    efficiency = tuning.decode_efficiency or c.CPU_DECODE_EFFICIENCY
    weights = weight_bytes(model)
    per_thread = tuning.cpu_millis_per_thread or 1000
    for threads in options:
        # A replica requests per_thread millicores a thread and may use `threads` CPUs (its
        # limit): below 1000 a small node holds more replicas, each bursting into idle cores.
        millis = threads * per_thread
        per_node = min(usable * 1000 // millis, int(spec.node.memory_gib * 0.9 // memory_request))
        share = max(millis / 1000 / spec.node.cpu, memory_request / spec.node.memory_gib)
        bandwidth = min(spec.node.memory_bandwidth_gbps,
                        threads * c.CPU_PER_CORE_BANDWIDTH_GBPS) * 1e9 * efficiency
        perf = ReplicaPerformance(
            engine=engine,
            weight_bytes=weights,
            kv_bytes_per_sequence=0.0,  # one short sequence: KV reads are small next to weights
            flops_per_token=2.0 * model.active,
            bandwidth_bytes_s=bandwidth,
            compute_flops_s=threads * decode_gflops * 1e9,
            prefill_tps=threads * prefill_gflops * 1e9 / (2.0 * model.active),
            max_concurrency=c.CPU_MAX_CONCURRENCY,
            step_overhead_s=0.0,
            cold_start_s=tuning.cold_start_seconds or c.COLD_START_SECONDS[engine],
            idle_watts=spec.power.idle_watts * share,
            max_watts=spec.power.idle_watts * share
            + (spec.power.max_watts - spec.power.idle_watts) * threads / spec.node.cpu,
            usd_per_hour=spec.usd_per_node_hour * share,
            grams_co2_per_kwh=spec.grams_co2_per_kwh,
            active_fraction=model.active / model.parameters,
        )
        problem = None
        if not fit.fits:
            problem = (f"needs {fit.needed_gib:.1f} GiB of RAM, a node offers "
                       f"{fit.capacity_gib:.1f} GiB")
        elif per_node < 1 and usable * 1000 >= millis:
            problem = (f"a replica requests {memory_request} GiB of memory (1.2 × "
                       f"{fit.needed_gib:.1f} GiB needed), a node offers "
                       f"{spec.node.memory_gib * 0.9:.1f} GiB")
        elif per_node < 1:
            problem = f"a {threads}-thread replica does not fit on a node"
        yield Shape(pool=pool, engine=engine, threads=threads, tensor_parallel=0, memory=fit,
                    cpu_request=threads, memory_request_gib=memory_request,
                    replicas_per_node=max(per_node, 0), performance=perf, problem=problem,
                    cpu_request_millis=millis)
        if not fit.fits:
            return  # RAM does not depend on the thread count: no other shape fits either


def _gpu_shapes(model: ModelSpec, pool: ServingPool, engine: str,
                typical_tokens: int) -> Iterator[Shape]:
    spec = pool.spec
    acc = spec.accelerator
    assert acc is not None
    tuning = spec.tuning
    decode_eff = tuning.decode_efficiency or c.GPU_DECODE_EFFICIENCY
    prefill_eff = tuning.prefill_efficiency or c.GPU_PREFILL_EFFICIENCY
    if model.quantization in c.GGUF_FORMATS:
        decode_eff *= c.VLLM_GGUF_EFFICIENCY
        prefill_eff *= c.VLLM_GGUF_EFFICIENCY
    speedup = c.LOW_PRECISION_COMPUTE_SPEEDUP.get(model.quantization, 1.0)
    if model.quantization is Quantization.FP8 and acc.peak_tflops_fp8 is not None:
        speedup = acc.peak_tflops_fp8 / acc.peak_tflops
    weights = weight_bytes(model)
    kv_per_token = kv_bytes_per_token(model)
    for tp in c.TENSOR_PARALLEL_OPTIONS:
        if tp > acc.count:
            break
        if (split := heads_problem(model, tp)) is not None:
            yield Shape(pool=pool, engine=engine, threads=0, tensor_parallel=tp,
                        memory=gpu_fit(model, acc.memory_gib, tp, typical_tokens),
                        cpu_request=0, memory_request_gib=0, replicas_per_node=0,
                        performance=None, problem=split)
            continue
        fit = gpu_fit(model, acc.memory_gib, tp, typical_tokens)
        tp_eff = c.TENSOR_PARALLEL_EFFICIENCY[tp]
        share = tp / acc.count
        cpu_request = max(1, int(spec.node.cpu * share * 0.8))
        memory_request = max(4, min(int(spec.node.memory_gib * share * 0.8),
                                    math.ceil(fit.weights_gib * 1.2 + 4)))
        if not fit.fits:
            yield Shape(pool=pool, engine=engine, threads=cpu_request, tensor_parallel=tp,
                        memory=fit, cpu_request=cpu_request, memory_request_gib=memory_request,
                        replicas_per_node=acc.count // tp, performance=None,
                        problem=(f"needs {fit.needed_gib:.1f} GiB on {tp} × {acc.type} "
                                 f"({fit.capacity_gib:.1f} GiB usable)"))
            continue
        peak = acc.peak_tflops * 1e12 * tp * speedup * tp_eff
        perf = ReplicaPerformance(
            engine=engine,
            weight_bytes=weights,
            kv_bytes_per_sequence=kv_per_token * typical_tokens / 2,
            flops_per_token=2.0 * model.active,
            bandwidth_bytes_s=acc.memory_bandwidth_gbps * 1e9 * tp * decode_eff * tp_eff,
            compute_flops_s=peak * decode_eff,
            prefill_tps=peak * prefill_eff / (2.0 * model.active),
            max_concurrency=max(1, fit.max_sequences),
            step_overhead_s=c.GPU_STEP_OVERHEAD_S,
            cold_start_s=tuning.cold_start_seconds or c.COLD_START_SECONDS[engine],
            idle_watts=spec.power.idle_watts * share,
            max_watts=spec.power.max_watts * share,
            usd_per_hour=spec.usd_per_node_hour * share,
            grams_co2_per_kwh=spec.grams_co2_per_kwh,
            active_fraction=model.active / model.parameters,
        )
        yield Shape(pool=pool, engine=engine, threads=cpu_request, tensor_parallel=tp,
                    memory=fit, cpu_request=cpu_request, memory_request_gib=memory_request,
                    replicas_per_node=acc.count // tp, performance=perf)


def served_tokens(task: Task, prompt_tokens: int, output_tokens: int) -> tuple[int, int]:
    """(prompt, output) tokens a request costs; embeddings generate nothing."""
    if task is Task.EMBEDDING:
        return prompt_tokens, 0
    return prompt_tokens, output_tokens
