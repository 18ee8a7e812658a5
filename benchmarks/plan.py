"""Placement throughput: 1,000 ModelDeployments × 20 ServingPools, planned in one run.

Usage: python benchmarks/plan.py [--models 1000] [--pools 20] [--seed 7]
Prints the wall time for the whole batch (target: under 1 s on the 2-core CI machine)
and the share of models placed on CPU vs GPU pools.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from wattserve.api import (
    SLO,
    Accelerator,
    ExpectedLoad,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelSpec,
    NodeShape,
    Objective,
    Power,
    Quantization,
    Scaling,
    ServingPool,
    ServingPoolSpec,
)
from wattserve.planning import plan

# The weight formats the generated models draw from: a fixed list (the API's first ten),
# so a format added to the API does not change the generated fleets or their recorded plans.
FORMATS = tuple(Quantization(q) for q in (
    "fp32", "bf16", "fp16", "fp8", "int8", "q8_0", "q5_k_m", "q4_k_m", "q4_1", "q4_0"))

GPU_TYPES = (  # type, memory GiB, bandwidth GB/s, bf16 TFLOPS, watts, $/GPU-hour, fp8 TFLOPS
    ("nvidia-l4", 24, 300, 121, 72, 0.80, 242),
    ("nvidia-a100-80gb", 80, 2039, 312, 400, 4.10, None),  # no FP8 compute (W8A16)
    ("nvidia-h100-80gb", 80, 3350, 989, 700, 6.88, 1978),
    ("nvidia-h200", 141, 4800, 989, 700, 7.90, 1978),
)


def make_pools(count: int, rng: random.Random) -> list[ServingPool]:
    pools = []
    for index in range(count):
        if index % 3 == 0:
            cpus = rng.choice((8, 16, 32, 64))
            spec = ServingPoolSpec(
                node=NodeShape(cpu=cpus, memory_gib=cpus * 4.0, memory_bandwidth_gbps=cpus * 2.75),
                usd_per_node_hour=0.0504 * cpus, power=Power(2.0 * cpus, 5.5 * cpus),
                grams_co2_per_kwh=rng.choice((30.0, 381.0, 481.0, 713.0)), max_nodes=20)
        else:
            kind, mem, bw, tflops, watts, price, fp8 = rng.choice(GPU_TYPES)
            count_per_node = rng.choice((1, 4, 8))
            spec = ServingPoolSpec(
                node=NodeShape(cpu=24 * count_per_node, memory_gib=128.0 * count_per_node,
                               memory_bandwidth_gbps=300),
                usd_per_node_hour=price * count_per_node,
                power=Power(100.0 * count_per_node, (watts + 150.0) * count_per_node),
                grams_co2_per_kwh=rng.choice((30.0, 381.0, 481.0, 713.0)), max_nodes=8,
                accelerator=Accelerator(type=kind, count=count_per_node, memory_gib=mem,
                                        memory_bandwidth_gbps=bw, peak_tflops=tflops,
                                        peak_tflops_fp8=fp8))
        pools.append(ServingPool(name=f"pool-{index:02d}", spec=spec))
    return pools


def make_models(count: int, rng: random.Random) -> list[ModelDeployment]:
    sizes = (135e6, 360e6, 1.7e9, 3e9, 8e9, 14e9, 32e9, 70e9, 405e9)
    models = []
    for index in range(count):
        params = int(rng.choice(sizes))
        quant = rng.choice(FORMATS)
        spec = ModelDeploymentSpec(
            model=ModelSpec(name=f"m{index}", source="hf://org/model", parameters=params,
                            quantization=quant, context_length=rng.choice((2048, 8192, 32768))),
            slo=SLO(latency_p95_ms=rng.choice((1000, 3000, 10000, 30000))),
            objective=rng.choice(list(Objective)),
            expected_load=ExpectedLoad(requests_per_second=rng.choice((0.05, 0.5, 2.0, 10.0, 50.0)),
                                       prompt_tokens=rng.choice((64, 256, 1024)),
                                       output_tokens=rng.choice((32, 128, 512))),
            scaling=Scaling(max_replicas=32),
        )
        models.append(ModelDeployment(name=f"md-{index}", namespace="bench", spec=spec))
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pools = make_pools(args.pools, rng)
    models = make_models(args.models, rng)
    best = float("inf")
    plans = []
    for attempt in range(args.repeat):
        start, cpu = time.perf_counter(), time.process_time()
        plans = [plan(md, pools) for md in models]
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        # run 1 starts with empty planner memos (cold); later runs reuse them (warm)
        print(f"run {attempt + 1}/{args.repeat} ({'cold' if attempt == 0 else 'warm'}): "
              f"{elapsed:.3f} s, {time.process_time() - cpu:.3f} CPU s", flush=True)
    kinds = Counter("unplaced" if p.chosen is None else
                    ("cpu" if p.chosen.accelerator == "cpu" else "gpu") for p in plans)
    per_pair_us = best / (args.models * args.pools) * 1e6
    print(f"{args.models} models x {args.pools} pools: best {best:.3f} s "
          f"({per_pair_us:.1f} us per model-pool pair); placed: "
          + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
