"""Fleet placement benchmark: wattserve's greedy placement vs everything on GPUs vs the exact
optimum (ILP, HiGHS through scipy.optimize.milp), on generated fleets, side by side.

Fleets: examples/fleet (18 models) on examples/pools.yaml (maxNodes 3/2/2), and generated
(seeded): 70 % small models (135M-1.7B, GGUF, 0.05-3 req/s), 25 % mid (7-8B fp8 or Q4_K_M,
0.2-10 req/s), 5 % large (70B fp8, 0.5-8 req/s); SLOs drawn from 3-30 s p95.
Pools: 20 = 5 regions (price × 0.8-1.3, grid 30-713 gCO2/kWh) × {16-vCPU CPU, 8-vCPU CPU,
4 × L4, 8 × H100}; "loose": the cheap CPU pools are sized to hold about half the small
models, so the fleet must spill; "tight": few CPU and L4 nodes (as the example pools'
maxNodes), so the cheap pools fill. Placements side by side in one run: the greedy alone
(fleet.assign, the code before) and the operator's (refine.place: the greedy, then the
exact ILP within 0.3 s where it is better). Every placement is costed by the same planner;
the objective is the fleet's $/hour. Times: the per-model evaluation (plan() of every
model on every pool), the fleet assignment, and the ILP solve, measured in the same run.

    python benchmarks/fleet.py [--fleets example,loose,tight] [--sizes 10,100,1000]
                               [--seeds 3] [--time-limit 60]
                               [--markdown out.md] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# --code DIR: plan with another copy of the operator package (e.g. `git archive` of the code
# before a change); read before the imports below.
CODE = (Path(sys.argv[sys.argv.index("--code") + 1]) if "--code" in sys.argv[:-1]
        else ROOT / "operator")
sys.path.insert(0, str(CODE))

from wattserve.api import (  # noqa: E402
    ModelDeployment,
    ServingPool,
    load_yaml_documents,
    parse_model_deployment,
    parse_serving_pool,
)
from wattserve.planning import fleet as fleet_module  # noqa: E402
from wattserve.planning import optimum, plan  # noqa: E402
from wattserve.planning.capacity import shape_capacity  # noqa: E402
from wattserve.planning.fleet import Member, assign, totals  # noqa: E402

REGIONS = [("us", 1.0, 481), ("eu", 1.15, 56), ("no", 1.3, 30), ("in", 0.8, 713),
           ("de", 1.2, 380)]
SMALL = [("135M", "q4_1", 2048), ("360M", "q4_k_m", 2048), ("1.7B", "q4_k_m", 4096)]
MID = [("8B", "fp8", 8192), ("7B", "q4_k_m", 8192), ("8B", "bf16", 8192)]
LARGE = [("70B", "fp8", 8192)]


def pools(fleet_size: int, tight: bool = False) -> list[ServingPool]:
    """Loose: the cheap CPU pools hold about half the small models, L4 pools room to spare.
    Tight (as examples/pools.yaml's maxNodes 3/2/2): a few CPU and L4 nodes per region, so
    the cheap pools fill and who gets them decides the fleet's cost."""
    base = {d["metadata"]["name"]: d for d in load_yaml_documents(
        (ROOT / "examples" / "pools.yaml").read_text())}
    out = []
    small_cpu_nodes = max(1, fleet_size // (150 if tight else 40))
    l4_nodes = max(1, fleet_size // 60) if tight else max(2, fleet_size // 12)
    for region, price, grams in REGIONS:
        for kind, src, nodes, scale in (
                ("cpu16", "cpu-general", small_cpu_nodes, 1.0),
                ("cpu8", "cpu-general", small_cpu_nodes, 0.5),
                ("l4", "gpu-l4", l4_nodes, 1.0),
                ("h100", "gpu-h100", max(2, fleet_size // 25), 1.0)):
            doc = json.loads(json.dumps(base[src]))
            name = f"{kind}-{region}"
            doc["metadata"] = {"name": name}
            spec = doc["spec"]
            spec["nodeSelector"] = {"wattserve.dev/pool": name}
            spec["tolerations"] = []
            if scale != 1.0:
                spec["node"]["cpu"] = int(spec["node"]["cpu"] * scale)
                spec["node"]["memoryGiB"] = int(spec["node"]["memoryGiB"] * scale)
                spec["node"]["memoryBandwidthGBps"] = int(
                    spec["node"]["memoryBandwidthGBps"] * scale)
                spec["power"] = {k: int(v * scale) for k, v in spec["power"].items()}
            usd = float(spec["pricing"]["usdPerNodeHour"]) * price * scale
            spec["pricing"]["usdPerNodeHour"] = f"{usd:.4f}"
            spec["carbon"]["gramsCO2PerKWh"] = grams
            spec["maxNodes"] = nodes
            out.append(parse_serving_pool(doc))
    return out


def fleet(size: int, seed: int) -> list[ModelDeployment]:
    rng = random.Random(seed)
    out = []
    for index in range(size):
        draw = rng.random()
        if draw < 0.70:
            params, quant, context = rng.choice(SMALL)
            rps = round(rng.uniform(0.05, 3), 3)
        elif draw < 0.95:
            params, quant, context = rng.choice(MID)
            rps = round(rng.uniform(0.2, 10), 3)
        else:
            params, quant, context = rng.choice(LARGE)
            rps = round(rng.uniform(0.5, 8), 3)
        doc = {
            "apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"m{index:04d}", "namespace": "bench"},
            "spec": {
                "model": {"name": "m", "source": "hf://org/m", "parameters": params,
                          "quantization": quant, "contextLength": context},
                "slo": {"latencyP95Ms": rng.choice([3000, 5000, 10000, 30000])},
                "expectedLoad": {"requestsPerSecond": f"{rps}", "promptTokens": 256,
                                 "outputTokens": rng.choice([64, 128, 256])},
                "scaling": {"maxReplicas": 50},
                "priority": rng.choice([0, 0, 0, 1]),
            },
        }
        out.append(parse_model_deployment(doc))
    return out


def _grown(members: list[Member], pool_set: list[ServingPool], greedy: dict[Any, Any],
           time_limit: float, grow: int) -> dict[str, Any]:
    """Capacity grows by ``grow`` nodes on every CPU pool: the fresh greedy there, the
    re-plan from the plan before (fleet.replan, where this code has it) and the optimum."""
    caps = {p.name: shape_capacity(p, p.spec.max_nodes + (0 if p.spec.is_gpu else grow))
            for p in pool_set}
    fresh = totals(members, {k: a.candidate for k, a in
                             assign(members, pool_set, caps).items()})
    out: dict[str, Any] = {"grown_fresh": vars(fresh)}
    replan = getattr(fleet_module, "replan", None)
    if replan is not None:
        started, cpu = time.perf_counter(), time.process_time()
        again = replan(members, pool_set, caps, greedy)
        out["replan_s"] = time.perf_counter() - started
        out["replan_cpu_s"] = time.process_time() - cpu
        out["grown_replan"] = vars(totals(members, {k: a.candidate
                                                    for k, a in again.items()}))
    out["grown_optimum"] = vars(optimum.solve(members, pool_set, caps,
                                              time_limit_s=time_limit).totals)
    return out


def example_fleet() -> tuple[list[ServingPool], list[ModelDeployment]]:
    """examples/fleet/ (18 models) on examples/pools.yaml (maxNodes 3/2/2): tight."""
    pool_set = [parse_serving_pool(d) for d in load_yaml_documents(
        (ROOT / "examples" / "pools.yaml").read_text())]
    mds = [parse_model_deployment(d) for path in sorted((ROOT / "examples" / "fleet").glob(
        "*.yaml")) for d in load_yaml_documents(path.read_text())]
    return pool_set, mds


def _operator(members: list[Member], pool_set: list[ServingPool]) -> tuple[Any, float, float]:
    """The operator's placement (planning/refine.place, where this code has it): best of 3."""
    try:
        from wattserve.planning import refine
    except ImportError:
        return None, 0.0, 0.0
    got, wall, cpu_s = None, float("inf"), float("inf")
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        got = refine.place(members, pool_set)
        wall = min(wall, time.perf_counter() - started)
        cpu_s = min(cpu_s, time.process_time() - cpu)
    return got, wall, cpu_s


def run_one(size: int, seed: int, time_limit: float, grow: int = 0,
            kind: str = "loose") -> dict[str, Any]:
    if kind == "example":
        pool_set, mds = example_fleet()
        size = len(mds)
    else:
        pool_set = pools(size, tight=kind == "tight")
        mds = fleet(size, seed)
    started, cpu = time.perf_counter(), time.process_time()
    members = [Member(md, plan(md, pool_set)) for md in mds]  # every model on every pool
    evaluate_s, evaluate_cpu = time.perf_counter() - started, time.process_time() - cpu
    assign_s = assign_cpu = float("inf")
    for _ in range(3):  # best of 3: the machine is shared
        started, cpu = time.perf_counter(), time.process_time()
        greedy = assign(members, pool_set)
        assign_s = min(assign_s, time.perf_counter() - started)
        assign_cpu = min(assign_cpu, time.process_time() - cpu)
    g = totals(members, {k: a.candidate for k, a in greedy.items()})
    gpu_pools = [p for p in pool_set if p.spec.is_gpu]
    a = totals(members, {k: x.candidate for k, x in assign(members, gpu_pools).items()})
    best = optimum.solve(members, pool_set, time_limit_s=time_limit)
    o = best.totals
    spilled = sum(1 for x in greedy.values() if x.spilled_from)
    grown = _grown(members, pool_set, greedy, time_limit, grow) if grow else {}
    placed, place_s, place_cpu = _operator(members, pool_set)
    if placed is None:  # code before planning/refine.py: the operator ran the greedy
        placed, place_s, place_cpu = greedy, assign_s, assign_cpu
    w = totals(members, {k: x.candidate for k, x in placed.items()})
    return {**grown, "fleet": kind,
        "operator": vars(w), "operator_s": place_s, "operator_cpu_s": place_cpu,
        "operator_vs_optimum": w.usd_per_hour / o.usd_per_hour if o.usd_per_hour else None,
        "models": size, "pools": len(pool_set), "seed": seed,
        "evaluate_s": evaluate_s, "evaluate_cpu_s": evaluate_cpu, "assign_s": assign_s,
        "assign_cpu_s": assign_cpu, "ilp_s": best.seconds,
        "ilp_status": best.status, "ilp_gap": best.gap, "spilled": spilled,
        "greedy": vars(g), "all_gpu": vars(a), "optimum": vars(o),
        "greedy_vs_optimum": g.usd_per_hour / o.usd_per_hour if o.usd_per_hour else None,
        "greedy_vs_all_gpu": g.usd_per_hour / a.usd_per_hour if a.usd_per_hour else None,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| fleet | models × pools | seed | placed greedy / opt / all-GPU | spilled "
             "| greedy $/h | wattserve $/h | optimum $/h | all-GPU $/h | greedy ÷ optimum "
             "| wattserve ÷ optimum | greedy ÷ all-GPU | greedy kW "
             "| greedy kgCO2/h | evaluate s (CPU s) | assign s (CPU s) "
             "| wattserve s (CPU s) | ILP s (status) |",
             "|" + "---|" * 18]
    coded = any("code" in r for r in rows)
    if coded:
        lines = ["| code " + lines[0], "|---" + lines[1]]
    for r in rows:
        g, o, a = r["greedy"], r["optimum"], r["all_gpu"]
        lines.append(
            (f"| {r['code']} " if coded else "") +
            f"| {r.get('fleet', 'loose')} "
            f"| {r['models']} × {r['pools']} | {r['seed']} | {g['placed']} / {o['placed']} / "
            f"{a['placed']} | {r['spilled']} | {g['usd_per_hour']:.2f} | "
            f"{r['operator']['usd_per_hour']:.2f} | "
            f"{o['usd_per_hour']:.2f} | {a['usd_per_hour']:.2f} | "
            f"{r['greedy_vs_optimum']:.4f} | {r['operator_vs_optimum']:.4f} | "
            f"{r['greedy_vs_all_gpu']:.3f} | "
            f"{g['watts'] / 1000:.2f} | {g['grams_co2_per_hour'] / 1000:.2f} | "
            f"{r['evaluate_s']:.2f} ({r['evaluate_cpu_s']:.2f}) | {r['assign_s']:.3f} "
            f"({r['assign_cpu_s']:.3f}) | {r['operator_s']:.3f} ({r['operator_cpu_s']:.3f}) "
            f"| {r['ilp_s']:.2f} ({r['ilp_status']}) |")
    return "\n".join(lines)


def grown_markdown(rows: list[dict[str, Any]], grow: int) -> str:
    lines = [f"| code | models | seed | $/h before | + {grow} node(s) per CPU pool: fresh greedy "
             "$/h | re-plan from before $/h | optimum $/h | fresh ÷ before | re-plan ÷ before "
             "| re-plan ÷ optimum | re-plan s (CPU s) |", "|" + "---|" * 11]
    for r in rows:
        before, fresh, best = (r["greedy"]["usd_per_hour"], r["grown_fresh"]["usd_per_hour"],
                               r["grown_optimum"]["usd_per_hour"])
        again = r.get("grown_replan", {}).get("usd_per_hour")
        cells = ("-", "-", "-", "-") if again is None else (
            f"{again:.2f}", f"{again / before:.4f}", f"{again / best:.4f}",
            f"{r['replan_s']:.3f} ({r['replan_cpu_s']:.3f})")
        lines.append(f"| {r.get('code', 'this')} | {r['models']} | {r['seed']} | {before:.2f} "
                     f"| {fresh:.2f} | {cells[0]} | {best:.2f} | {fresh / before:.4f} | "
                     f"{cells[1]} | {cells[2]} | {cells[3]} |")
    return "\n".join(lines)


def _side_by_side(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every fleet planned by the code before (--baseline) and this code, alternately, each
    in a fresh process (cold memos)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            for seed in range(args.seeds):
                for label, code in (("before", Path(args.baseline)), ("after", ROOT / "operator")):
                    print(f"fleet of {size}, seed {seed}, code {label} …", file=sys.stderr,
                          flush=True)
                    out = Path(tmp) / "rows.json"
                    subprocess.run([sys.executable, __file__, "--code", str(code), "--sizes",
                                    str(size), "--seed", str(seed), "--grow", str(args.grow),
                                    "--fleets", "loose",
                                    "--time-limit", str(args.time_limit), "--json", str(out)],
                                   check=True, stdout=subprocess.DEVNULL, timeout=1800)
                    rows.extend({**row, "code": label} for row in json.loads(out.read_text()))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--fleets", default="example,loose,tight",
                        help="example (examples/fleet on examples/pools.yaml), loose, tight")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--markdown")
    parser.add_argument("--json")
    parser.add_argument("--seed", type=int, help="only this seed")
    parser.add_argument("--grow", type=int, default=0,
                        help="also grow every CPU pool by this many nodes and re-plan")
    parser.add_argument("--code", help="the operator package tree to plan with")
    parser.add_argument("--baseline", help="an operator tree of the code before: plan every "
                        "fleet with it and with this code, alternately, fresh processes")
    args = parser.parse_args()
    if not optimum.available():
        print(optimum.MISSING_SCIPY, file=sys.stderr)
        return 2
    rows = []
    if args.baseline:
        rows = _side_by_side(args)
    else:
        seeds = [args.seed] if args.seed is not None else range(args.seeds)
        kinds = args.fleets.split(",")
        if "example" in kinds:
            print("examples/fleet …", file=sys.stderr, flush=True)
            rows.append(run_one(0, 0, args.time_limit, args.grow, "example"))
        for kind in (k for k in kinds if k != "example"):
            for size in (int(s) for s in args.sizes.split(",")):
                for seed in seeds:
                    print(f"{kind} fleet of {size}, seed {seed} …", file=sys.stderr,
                          flush=True)
                    rows.append(run_one(size, seed, args.time_limit, args.grow, kind))
    text = markdown(rows)
    if args.grow:
        text += "\n\n" + grown_markdown(rows, args.grow)
    if hasattr(os, "getloadavg"):
        text += f"\n\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    for key, label in (("greedy_vs_optimum", "greedy"), ("operator_vs_optimum", "wattserve")):
        text += (f"\n\nworst {label} ÷ optimum: {max(r[key] for r in rows):.4f}; median: "
                 f"{statistics.median(r[key] for r in rows):.4f}")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
