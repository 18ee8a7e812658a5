"""The demo's closing report: the example fleet (examples/fleet/, a realistic mix of many small
and mid-size models at low rates and a few large ones at high load) as wattserve places it,
against everything on GPUs: $/hour, kW and gCO2/hour, from the same planner as
`wattserve plan -f examples/fleet --pools examples/pools.yaml`.

    python -m e2e.fleet_report [-o json]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattserve.api import (
    ModelDeployment,
    Objective,
    ServingPool,
    load_yaml_documents,
    parse_model_deployment,
    parse_serving_pool,
)
from wattserve.cli.plan_fleet import data, plan_fleet
from wattserve.cli.table import render_table

REPO = Path(__file__).resolve().parents[1]
FLEET = REPO / "examples" / "fleet"
POOLS = REPO / "examples" / "pools.yaml"


def load_fleet_file(path: Path) -> list[ModelDeployment]:
    models = []
    for doc in load_yaml_documents(path.read_text(), str(path)):
        doc.setdefault("metadata", {}).setdefault("namespace", "default")
        models.append(parse_model_deployment(doc))
    return models


def load_fleet(directory: Path = FLEET) -> list[ModelDeployment]:
    return [md for path in sorted(directory.glob("*.yaml")) for md in load_fleet_file(path)]


def load_pools(path: Path = POOLS) -> list[ServingPool]:
    return [parse_serving_pool(doc) for doc in load_yaml_documents(path.read_text(), str(path))]


def size_class(md: ModelDeployment) -> str:
    params = md.spec.model.parameters
    return "small (<3B)" if params < 3e9 else ("mid (3-10B)" if params < 10e9 else "large")


@dataclass
class PoolLine:
    models: list[str] = field(default_factory=list)
    replicas: int = 0
    usd_per_hour: float = 0.0
    watts: float = 0.0


@dataclass
class FleetReport:
    """What the planner gives for the fleet; ``pools`` is wattserve's placement per pool."""

    models: int
    by_size: dict[str, int]
    pools: dict[str, PoolLine]
    rows: list[dict[str, Any]]  # greedy, everything on GPU, optimum (when scipy is there)
    scale_to_zero: int  # models that may scale to zero when idle (minReplicas 0)
    unplaced: list[str]
    spilled: list[str]  # placed on a dearer pool because their best pool was full

    def row(self, prefix: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["placement"].startswith(prefix))

    def to_dict(self) -> dict[str, Any]:
        return {"models": self.models, "bySize": self.by_size, "scaleToZero": self.scale_to_zero,
                "unplaced": self.unplaced, "spilled": self.spilled,
                "pools": {name: vars(line) for name, line in self.pools.items()},
                "fleet": self.rows}


def build(models: list[ModelDeployment], pools: list[ServingPool],
          time_limit_s: float = 10.0) -> FleetReport:
    objective = Objective.COST
    members, greedy, rows = plan_fleet(models, pools, objective=objective, with_optimum=True,
                                       time_limit_s=time_limit_s)
    out = data(members, greedy, rows, pools, objective)
    by_pool: dict[str, PoolLine] = defaultdict(PoolLine)
    unplaced, spilled = [], []
    for item in out["models"]:
        fleet = item["fleet"]
        if "pool" not in fleet:
            unplaced.append(item["modelDeployment"])
            continue
        if fleet.get("spilledFrom"):
            spilled.append(f"{item['modelDeployment']} (from {fleet['spilledFrom']})")
        line = by_pool[fleet["pool"]]
        line.models.append(item["modelDeployment"])
        line.replicas += int(fleet["replicas"])
        line.usd_per_hour += float(fleet["usdPerHour"])
        line.watts += float(fleet["watts"])
    sizes: dict[str, int] = defaultdict(int)
    for md in models:
        sizes[size_class(md)] += 1
    return FleetReport(models=len(models), by_size=dict(sizes), pools=dict(sorted(by_pool.items())),
                       rows=out["fleet"],
                       scale_to_zero=sum(1 for md in models if md.spec.scaling.min_replicas == 0),
                       unplaced=unplaced, spilled=spilled)


def text(report: FleetReport) -> str:
    sizes = ", ".join(f"{count} {name}" for name, count in sorted(report.by_size.items()))
    pool_rows = [[name, str(len(line.models)), str(line.replicas), f"{line.usd_per_hour:.2f}",
                  f"{line.watts:.0f}", ", ".join(line.models)[:70]]
                 for name, line in report.pools.items()]
    fleet_rows = [[r["placement"], str(r["placed"]), str(r["unplaced"]), r["usdPerHour"],
                   r["kW"], r["gramsCO2PerHour"]] for r in report.rows]
    ours, gpu = report.row("wattserve"), report.row("everything on GPU")
    money = 1 - float(ours["usdPerHour"]) / float(gpu["usdPerHour"])
    energy = 1 - float(ours["kW"]) / float(gpu["kW"])
    lines = [
        f"The example fleet (examples/fleet/): {report.models} models ({sizes}), "
        "at their expected loads, on the pools of examples/pools.yaml.",
        render_table(["POOL", "MODELS", "REPLICAS", "$/HOUR", "WATTS", "WHICH"], pool_rows),
        "",
        render_table(["FLEET PLACEMENT", "PLACED", "UNPLACED", "$/HOUR", "kW", "gCO2/HOUR"],
                     fleet_rows),
        "",
        f"wattserve vs everything on GPUs: {money:.0%} less money, {energy:.0%} less energy "
        f"({ours['gramsCO2PerHour']} vs {gpu['gramsCO2PerHour']} gCO2/hour), while serving. "
        f"{report.scale_to_zero} of {report.models} models scale to zero when idle, which "
        "these figures do not count.",
    ]
    best = next((r for r in report.rows if r["placement"].startswith("optimum")), None)
    if best is not None:
        lines.append(f"The exact optimum (ILP) of the same fleet: {best['usdPerHour']} $/hour.")
    if report.spilled:
        lines.append(f"Spilled to a dearer pool because the best one was full (maxNodes): "
                     f"{', '.join(report.spilled)}.")
    if report.unplaced:
        lines.append(f"Not placed (pools full or no feasible pool): {', '.join(report.unplaced)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    report = build(load_fleet(), load_pools())
    if argv[:2] == ["-o", "json"]:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(text(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
