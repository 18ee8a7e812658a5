"""examples/fleet/: every ModelDeployment parses, says where its load figure comes from, and
is placeable on the example pools on its own; the demo's fleet report computes and names the
pools it used. (How much cheaper the fleet is, is a result, not something tested here.)"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from wattserve.planning import plan

from e2e import fleet_report
from tests.unit.factories import EXAMPLES

FILES = sorted((EXAMPLES / "fleet").glob("*.yaml"))


def test_the_fleet_is_a_mix_of_many_small_and_mid_size_models_and_a_few_large_ones() -> None:
    models = fleet_report.load_fleet()
    assert len(models) == len(FILES) >= 12
    sizes = [fleet_report.size_class(md) for md in models]
    assert sizes.count("large") >= 1
    assert sizes.count("small (<3B)") + sizes.count("mid (3-10B)") >= 0.75 * len(models)
    assert len({md.name for md in models}) == len(models)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_fleet_model_cites_its_load_and_plans_on_the_example_pools(path: Path) -> None:
    assert any(line.startswith("# Load:") for line in path.read_text().splitlines())
    (md,) = fleet_report.load_fleet_file(path)
    chosen = plan(md, fleet_report.load_pools()).chosen
    assert chosen is not None, f"{path.name}: no feasible pool"


def test_the_fleet_report_computes_and_names_the_pools_it_used() -> None:
    pools = fleet_report.load_pools()
    report = fleet_report.build(fleet_report.load_fleet(), pools, time_limit_s=5.0)
    names = {pool.name for pool in pools}
    assert report.pools and set(report.pools) <= names
    placed = [m for line in report.pools.values() for m in line.models]
    assert len(placed) == len(set(placed)) == report.models - len(report.unplaced)
    for line in report.pools.values():
        assert line.replicas >= len(line.models)
        assert math.isfinite(line.usd_per_hour) and line.usd_per_hour > 0
    ours, gpu = report.row("wattserve"), report.row("everything on GPU")
    for row in (ours, gpu):
        assert float(row["usdPerHour"]) > 0 and float(row["kW"]) > 0
        assert float(row["gramsCO2PerHour"]) > 0
    assert math.isclose(float(ours["usdPerHour"]),
                        sum(line.usd_per_hour for line in report.pools.values()), rel_tol=0.01)
    out = fleet_report.text(report)
    assert all(name in out for name in report.pools)
    assert "less money" in out and "gCO2/hour" in out
