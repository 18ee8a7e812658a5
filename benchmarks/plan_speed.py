"""Planner evaluation speed, before vs after, side by side in one run.

Runs the two evaluation workloads of benchmarks/fleet.py (plan() of 1,000 generated models
on 20 pools: the "evaluate" column) and benchmarks/plan.py (1,000 × 20, seed 7) against two
copies of the planner — ``--baseline DIR`` (an ``operator/`` tree, e.g. extracted with
``git archive <ref> operator/wattserve | tar -x -C DIR``) and this checkout — alternating
between them, each repetition in a FRESH process so every memo starts empty (the cold
path). Reports CPU seconds (time.process_time), best and median of N, and the warm second
pass in the same process.

    python benchmarks/plan_speed.py --baseline /tmp/base/operator [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
import wattserve  # from argv[1], before fleet.py puts this checkout on the path
from wattserve.planning import plan
import fleet as F, plan as P
assert wattserve.__file__.startswith(sys.argv[1]), wattserve.__file__
pools = F.pools(1000)
fleet = F.fleet(1000, int(sys.argv[3]))
rng = random.Random(7)
ppools = P.make_pools(20, rng)
pmodels = P.make_models(1000, rng)
out = {}
for name, mds, ps in (("fleet", fleet, pools), ("plan", pmodels, ppools)):
    for phase in ("cold", "warm"):
        cpu = time.process_time()
        [plan(md, ps) for md in mds]
        out[f"{name}_{phase}"] = time.process_time() - cpu
print(json.dumps(out))
"""


def one(operator_dir: Path, seed: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(operator_dir),
                           str(ROOT / "benchmarks"), str(seed)],
                          capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    started = time.time()
    for attempt in range(args.repeat):
        for label, where in (("before", args.baseline), ("after", ROOT / "operator")):
            runs[label].append(one(where, args.seed))
        print(f"repetition {attempt + 1}/{args.repeat} done", file=sys.stderr, flush=True)
    print("| workload (CPU s) | before best | before median | after best | after median "
          "| speed-up (best) |")
    print("|---|---|---|---|---|---|")
    for key in ("fleet_cold", "fleet_warm", "plan_cold", "plan_warm"):
        b = [r[key] for r in runs["before"]]
        a = [r[key] for r in runs["after"]]
        print(f"| {key} | {min(b):.3f} | {statistics.median(b):.3f} | {min(a):.3f} "
              f"| {statistics.median(a):.3f} | {min(b) / min(a):.2f} × |")
    print(f"\n{args.repeat} alternating repetitions, fresh process each, "
          f"{time.time() - started:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
