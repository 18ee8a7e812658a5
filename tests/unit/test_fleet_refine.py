"""The operator's fleet placement (planning/refine.place): the greedy, then the exact ILP
within 0.3 s where it is better — within 5 % of the optimum on the tight example fleet
where the greedy alone is 27 % off, and keeping every rule of the greedy: what the greedy
places stays placed, a running model never pays more or moves before its dwell time, and
adding capacity never makes the operator's re-plan cost more."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st
from wattserve.api import Objective, ServingPool, parse_model_deployment, parse_serving_pool
from wattserve.planning import optimum, refine
from wattserve.planning.capacity import PoolCapacity, Resources
from wattserve.planning.fleet import Member, Rebalance, assign, members_of, seeded

from e2e import fleet_report
from tests.unit.factories import EXAMPLES, example_pool_docs
from tests.unit.test_fleet_monotone import (
    BY_NAME,
    POOLS,
    SETTINGS,
    Nodes,
    assert_fits,
    capacities,
    fleet_totals,
    fleets,
    grown,
    growth,
    no_worse,
    sizes,
)


def _example() -> tuple[list[Member], list]:  # type: ignore[type-arg]
    pools = fleet_report.load_pools()
    return members_of(fleet_report.load_fleet(), pools), pools


def test_the_example_fleet_is_placed_within_5_percent_of_the_optimum() -> None:
    members, pools = _example()
    best = optimum.solve(members, pools, time_limit_s=30).totals
    greedy = fleet_totals(members, assign(members, pools))
    placed = fleet_totals(members, refine.place(members, pools))
    assert placed.placed == greedy.placed == best.placed == len(members)
    # the case this is for: the greedy alone spills small models to gpu-h100
    assert greedy.usd_per_hour > 1.05 * best.usd_per_hour
    assert placed.usd_per_hour <= 1.05 * best.usd_per_hour
    assert best.usd_per_hour <= placed.usd_per_hour * (1 + 1e-9)  # the optimum bounds it


def test_a_model_the_optimum_moves_off_its_best_pool_says_why() -> None:
    members, pools = _example()
    got = refine.place(members, pools)
    ranked_first = {m.key: m.plan.chosen.pool for m in members if m.plan.chosen is not None}
    moved = [a for k, a in got.items() if a.candidate and a.candidate.pool != ranked_first[k]]
    assert moved
    assert all(a.spilled_from == ranked_first[a.key] for a in moved)
    assert any("the fleet optimum gives" in a.reason for a in moved)


def test_without_scipy_the_operator_places_the_greedy_way(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    members, pools = _example()
    monkeypatch.setattr(refine, "have_scipy", lambda: False)
    got = refine.place(members, pools)
    greedy = assign(members, pools)
    assert {k: a.candidate for k, a in got.items()} == {k: a.candidate
                                                       for k, a in greedy.items()}


def test_past_the_column_bound_the_greedy_stands() -> None:
    members, pools = _example()
    got = refine.place(members, pools, max_columns=10)
    assert fleet_totals(members, got) == fleet_totals(members, assign(members, pools))


def test_running_models_do_not_move_before_their_dwell_time() -> None:
    """The greedy's placement runs (placed just now); the ILP would move models, but the
    hysteresis offers a running model only its own pool until it has dwelt there."""
    members, pools = _example()
    running_plan = assign(members, pools)
    now = 1_000.0
    by_name = {p.name: p for p in pools}
    running = [replace(seeded(m, running_plan[m.key], by_name), placed_at=now)
               for m in members]
    got = refine.place(running, pools, now=now, policy=Rebalance())
    for member in running:
        assert got[member.key].candidate is not None
        assert got[member.key].candidate.pool == member.current_pool  # type: ignore[union-attr]


@SETTINGS
@given(fleets(), sizes, st.lists(growth, min_size=1, max_size=2),
       st.sampled_from([Rebalance(), Rebalance(0.0, 0.0), Rebalance(0.3, 60.0)]),
       st.lists(st.floats(0, 900), min_size=14, max_size=14))
def test_the_operators_placement_after_capacity_grows_never_costs_more(
        members: list[Member], nodes: Nodes, steps: list[Nodes], policy: Rebalance,
        ages: list[float]) -> None:
    """As test_fleet_monotone's operator property, for refine.place (what the operator
    runs): no placed model loses its place or pays more, the fleet never costs more, no
    pool over-commits."""
    now = 10_000.0
    got = refine.place(members, POOLS, capacities(nodes))
    greedy = assign(members, POOLS, capacities(nodes))
    assert no_worse(fleet_totals(members, got), fleet_totals(members, greedy))
    for more in steps:
        before = fleet_totals(members, got)
        running = []
        for index, member in enumerate(members):
            live = seeded(member, got[member.key], BY_NAME)
            running.append(live if live.current_pool is None
                           else replace(live, placed_at=now - ages[index]))
        nodes = grown(nodes, more)
        after_got = refine.place(running, POOLS, capacities(nodes), now, policy)
        for member in members:
            old, new = got[member.key].candidate, after_got[member.key].candidate
            if old is not None:
                assert new is not None, f"{member.key} lost its place"
                assert new.usd_per_hour <= old.usd_per_hour * (1 + 1e-12), member.key
        after = fleet_totals(members, after_got)
        assert no_worse(after, before), (more, before, after)
        assert_fits(after_got, capacities(nodes))
        got = after_got


@SETTINGS
@given(fleets(), sizes, st.lists(growth, min_size=1, max_size=2))
def test_a_plan_from_the_incumbent_with_the_ilp_never_costs_more(
        members: list[Member], nodes: Nodes, steps: list[Nodes]) -> None:
    """`wattserve plan --incumbent` (refine.replan)."""
    got = refine.place(members, POOLS, capacities(nodes))
    for more in steps:
        before = fleet_totals(members, got)
        nodes = grown(nodes, more)
        got = refine.replan(members, POOLS, capacities(nodes), got, Objective.COST)
        assert no_worse(fleet_totals(members, got), before)
        assert_fits(got, capacities(nodes))



def _cheap_pool(doc: dict[str, Any], name: str, price: str) -> ServingPool:
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name}
    doc["spec"]["nodeSelector"] = {"wattserve.dev/pool": name}
    doc["spec"]["pricing"]["usdPerNodeHour"] = price
    doc["spec"]["maxNodes"] = 10
    return parse_serving_pool(doc)


def test_identical_models_keep_the_greedys_plan_no_reshuffle_on_a_tie() -> None:
    """Twelve copies of SmolLM2 on a CPU pool of 3 counted nodes that holds six
    (tests/integration/test_fleet_placement.py's case): every split costs the same, so the
    program's plan (a shuffle, cheaper only by float noise) must not replace the greedy's;
    else models move between pools for nothing and their status says the wrong reason."""
    docs = {d["metadata"]["name"]: d for d in example_pool_docs()}
    pools = [parse_serving_pool(d) for d in docs.values()] + [
        _cheap_pool(docs["cpu-general"], "fl-cpu", "0.01"),
        _cheap_pool(docs["gpu-l4"], "fl-gpu", "0.03")]
    caps = {"fl-cpu": PoolCapacity("fl-cpu", (Resources(16.0, 64.0),) * 3, "nodes"),
            "fl-gpu": PoolCapacity("fl-gpu", (Resources(48.0, 192.0, 4),) * 2, "nodes",
                                   True)}
    doc = yaml.safe_load((EXAMPLES / "models" / "smollm2-135m.yaml").read_text())
    mds = []
    for index in range(12):
        doc["metadata"] = {"name": f"smol-{index:02d}", "namespace": "ns"}
        mds.append(parse_model_deployment(doc))
    members = members_of(mds, pools)
    greedy = assign(members, pools, caps)
    got = refine.place(members, pools, caps)
    assert {k: a.candidate for k, a in got.items()} == {k: a.candidate
                                                       for k, a in greedy.items()}
    assert {a.candidate.pool for a in got.values() if a.candidate} == {"fl-cpu", "fl-gpu"}
