"""The planner's results on generated fleets are exactly the recorded ones: speed-ups of
the evaluation (caches, hoisted constants, pruning) must not change a single figure."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.planner_snapshot import generate

SNAPSHOT = Path(__file__).parent / "data" / "planner_snapshot.json"


def test_plans_and_fleet_assignment_equal_the_recorded_reference() -> None:
    expected = json.loads(SNAPSHOT.read_text())
    got = json.loads(json.dumps(generate()))
    for key in ("plan_bench", "fleet_bench"):
        assert got[key]["chosen"] == expected[key]["chosen"], key
        assert got[key]["digest"] == expected[key]["digest"], key
    assert got["fleet_assign"] == expected["fleet_assign"]


def test_planning_twice_gives_the_same_result_as_planning_once() -> None:
    first = json.dumps(generate())
    assert json.dumps(generate()) == first  # warm caches answer as the cold path did


def test_planning_from_several_threads_at_once_gives_the_sequential_plans() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from wattserve.planning import plan
    from wattserve.planning import shapes as shapes_module

    from tests.unit.planner_snapshot import bench, summary

    fleet_bench = bench("fleet")
    pools = fleet_bench.pools(120)
    mds = fleet_bench.fleet(120, 5)
    shapes_module._SHAPES.clear()  # every thread starts on cold, shared memo entries
    with ThreadPoolExecutor(max_workers=4) as executor:
        threaded = list(executor.map(lambda md: plan(md, pools), mds))
    shapes_module._SHAPES.clear()
    assert summary(threaded) == summary([plan(md, pools) for md in mds])
