"""Generated fleets and their plans, summarised exactly (float repr): the reference that
tests/unit/test_planner_snapshot.py compares the planner's output with.

Regenerate only when a planner change is MEANT to change results:
    python3 tests/unit/planner_snapshot.py > tests/unit/data/planner_snapshot.json
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def bench(name: str) -> ModuleType:
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(plans: list[Any]) -> dict[str, Any]:
    """Per model: chosen pool and $/h; and one digest over every candidate's every field."""
    digest = hashlib.sha256()
    chosen = []
    for result in plans:
        digest.update(repr((result.model_deployment, result.reason)).encode())
        for cand in result.candidates:
            fields = {k: v for k, v in vars(cand).items() if k != "performance"}
            digest.update(repr(sorted(fields.items())).encode())
            digest.update(repr(cand.performance).encode())
        best = result.chosen
        chosen.append(None if best is None else
                      [best.pool, best.replicas, repr(best.usd_per_hour),
                       repr(best.joules_per_token)])
    return {"digest": digest.hexdigest(), "chosen": chosen}


def generate() -> dict[str, Any]:
    import random

    from wattserve.planning import plan
    from wattserve.planning.fleet import assign, members_of

    out: dict[str, Any] = {}
    plan_bench = bench("plan")
    rng = random.Random(7)
    pools = plan_bench.make_pools(20, rng)
    models = plan_bench.make_models(300, rng)
    out["plan_bench"] = summary([plan(md, pools) for md in models])
    fleet_bench = bench("fleet")
    pools = fleet_bench.pools(300)
    mds = fleet_bench.fleet(300, 1)
    members = members_of(mds, pools)
    out["fleet_bench"] = summary([m.plan for m in members])
    got = assign(members, pools)
    out["fleet_assign"] = [
        None if a.candidate is None else [a.candidate.pool, a.replicas, a.reason]
        for _, a in sorted(got.items())]
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "operator"))
    json.dump(generate(), sys.stdout, indent=0)
    print()
