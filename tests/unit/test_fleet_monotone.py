"""Adding capacity never makes the fleet cost more (issue 18, item 4), for what the operator
and `wattserve plan` produce — not only for the exact optimum (test_fleet_properties.py).

The fleets are the shapes where a first-fit greedy breaks: many small models competing for
tight CPU pools (0-3 nodes each, two CPU pools with different node sizes and prices), a few
mid-size models, mixed priorities; capacity grows by one or more nodes on one or more pools.
``test_the_search_reaches_fleets_where_the_fresh_greedy_is_not_monotone`` shows these
strategies do find the fresh greedy's counterexamples, so the two properties below hold
because of the design (re-plan from the incumbent), not because the fleets are easy.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from wattserve.api import Objective, ServingPool, parse_model_deployment, parse_serving_pool
from wattserve.planning.capacity import PoolCapacity, Resources, replica_request, shape_capacity
from wattserve.planning.fleet import (
    Assignment,
    Key,
    Member,
    Rebalance,
    Totals,
    assign,
    members_of,
    replan,
    seeded,
    totals,
)

from tests.unit.factories import example_pool_docs


def _pools() -> list[ServingPool]:
    docs = {d["metadata"]["name"]: d for d in example_pool_docs()}
    out = [parse_serving_pool(docs[name]) for name in ("cpu-general", "gpu-l4", "gpu-h100")]
    for name, cpu, price in (("cpu-small", 8, "0.36"), ("cpu-eu", 16, "0.93")):
        doc = copy.deepcopy(docs["cpu-general"])
        doc["metadata"] = {"name": name}
        doc["spec"]["nodeSelector"] = {"wattserve.dev/pool": name}
        doc["spec"]["node"].update(cpu=cpu, memoryGiB=4 * cpu)
        doc["spec"]["pricing"]["usdPerNodeHour"] = price
        doc["spec"]["maxNodes"] = 4
        out.append(parse_serving_pool(doc))
    return out


POOLS = _pools()
BY_NAME = {pool.name: pool for pool in POOLS}
CPU_POOLS = ["cpu-general", "cpu-small", "cpu-eu"]
SMALL = [("135M", "q4_1", 2048), ("360M", "q4_k_m", 2048), ("1.7B", "q4_k_m", 4096)]
MID = [("8B", "q4_k_m", 8192), ("8B", "fp8", 8192)]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@st.composite
def fleets(draw: Any) -> list[Member]:
    count = draw(st.integers(3, 14))
    mds = []
    for index in range(count):
        kind = draw(st.sampled_from(SMALL * 4 + MID))  # ~85 % small
        doc = {
            "apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"m{index:02d}", "namespace": "ns"},
            "spec": {
                "model": {"name": "m", "source": "hf://org/m", "parameters": kind[0],
                          "quantization": kind[1], "contextLength": kind[2]},
                "slo": {"latencyP95Ms": draw(st.sampled_from([3000, 10000, 30000]))},
                "expectedLoad": {"requestsPerSecond": draw(st.sampled_from(
                                     ["0.05", "0.2", "0.5", "1", "2", "4"])),
                                 "promptTokens": 256, "outputTokens": 128},
                "scaling": {"maxReplicas": 8},
                "priority": draw(st.integers(-1, 1)),
            },
        }
        mds.append(parse_model_deployment(doc))
    return members_of(mds, POOLS)


# Tight: the CPU pools hold 0-3 counted nodes of mixed sizes (4, 8 or 16 vCPU, 4 GiB per
# vCPU, as on a cluster whose nodes differ), the GPU pools 0-2 nodes of their shape.
NODE_SIZES = [4, 8, 16]
node_lists = st.lists(st.sampled_from(NODE_SIZES), max_size=3)
sizes = st.fixed_dictionaries({name: node_lists for name in CPU_POOLS}
                              | {"gpu-l4": st.integers(0, 2).map(lambda n: [0] * n),
                                 "gpu-h100": st.integers(0, 1).map(lambda n: [0] * n)})
# One growth step: 1-2 more nodes on 1-3 pools (mostly CPU pools, where the fight is).
growth = st.dictionaries(st.sampled_from(CPU_POOLS * 3 + ["gpu-l4", "gpu-h100"]),
                         st.lists(st.sampled_from(NODE_SIZES), min_size=1, max_size=2),
                         min_size=1, max_size=3)
Nodes = dict[str, list[int]]


def capacities(nodes: Nodes) -> dict[str, PoolCapacity]:
    """Counted nodes, ordered as the operator orders them (capacity.pool_capacity)."""
    out = {}
    for name, counts in nodes.items():
        pool = BY_NAME[name]
        if pool.spec.is_gpu:
            out[name] = shape_capacity(pool, len(counts))
        else:
            cpus = sorted(counts, reverse=True)
            out[name] = PoolCapacity(name, tuple(Resources(float(c), 4.0 * c) for c in cpus),
                                     "nodes")
    return out


def grown(nodes: Nodes, more: Nodes) -> Nodes:
    return {name: counts + more.get(name, []) for name, counts in nodes.items()}


def fleet_totals(members: list[Member], got: dict[Key, Assignment]) -> Totals:
    return totals(members, {k: a.candidate for k, a in got.items()})


def no_worse(after: Totals, before: Totals) -> bool:
    """More placed, or as many placed at no higher $/hour (relative 1e-9: float sums)."""
    if after.placed != before.placed:
        return after.placed > before.placed
    return after.usd_per_hour <= before.usd_per_hour * (1 + 1e-9) + 1e-12


def assert_fits(got: dict[Key, Assignment], caps: dict[str, PoolCapacity]) -> None:
    used = {name: Resources() for name in caps}
    for a in got.values():
        if a.candidate is not None:
            request = replica_request(a.candidate, BY_NAME[a.candidate.pool])
            used[a.candidate.pool] = used[a.candidate.pool] + request.times(a.replicas)
    for name, cap in caps.items():
        assert cap.total.holds(used[name]), f"{name}: {used[name]} > {cap.total}"


def _fresh(members: list[Member], nodes: Nodes) -> dict[Key, Assignment]:
    return assign(members, POOLS, capacities(nodes))


@SETTINGS
@given(fleets(), sizes, st.lists(growth, min_size=1, max_size=3))
def test_a_plan_from_the_plan_at_less_capacity_never_costs_more(
        members: list[Member], nodes: Nodes, steps: list[Nodes]) -> None:
    """`wattserve plan --incumbent` (fleet.replan): each step starts from the last plan."""
    got = _fresh(members, nodes)
    for more in steps:
        before = fleet_totals(members, got)
        nodes = grown(nodes, more)
        got = replan(members, POOLS, capacities(nodes), got, Objective.COST)
        after = fleet_totals(members, got)
        assert no_worse(after, before), (more, before, after)
        assert_fits(got, capacities(nodes))


@SETTINGS
@given(fleets(), sizes, st.lists(growth, min_size=1, max_size=3),
       st.sampled_from([Rebalance(), Rebalance(0.0, 0.0), Rebalance(0.3, 60.0)]),
       st.lists(st.floats(0, 900), min_size=14, max_size=14))
def test_the_operators_replan_after_capacity_grows_never_costs_more(
        members: list[Member], nodes: Nodes, steps: list[Nodes],
        policy: Rebalance, ages: list[float]) -> None:
    """The operator's re-plan (fleet.assign with what runs): no placed model loses its place,
    none pays more for its own objective, so the fleet never costs more."""
    now = 10_000.0
    got = _fresh(members, nodes)
    for more in steps:
        before = fleet_totals(members, got)
        running = []
        for index, member in enumerate(members):  # what the operator reads back
            live = seeded(member, got[member.key], BY_NAME)
            running.append(live if live.current_pool is None
                           else replace(live, placed_at=now - ages[index]))
        nodes = grown(nodes, more)
        after_got = assign(running, POOLS, capacities(nodes), now, policy)
        for member in members:
            old, new = got[member.key].candidate, after_got[member.key].candidate
            if old is not None:
                assert new is not None, f"{member.key} lost its place"
                assert new.usd_per_hour <= old.usd_per_hour * (1 + 1e-12), member.key
        after = fleet_totals(members, after_got)
        assert no_worse(after, before), (more, before, after)
        assert_fits(after_got, capacities(nodes))
        got = after_got


def test_the_search_reaches_fleets_where_the_fresh_greedy_is_not_monotone() -> None:
    """The strategies above are not easy: they reach fleets where the greedy planned from
    nothing at the larger capacity costs more (or places fewer) than at the smaller one."""

    def breaks(case: tuple[list[Member], Nodes, Nodes]) -> bool:
        members, nodes, more = case
        before = fleet_totals(members, _fresh(members, nodes))
        after = fleet_totals(members, _fresh(members, grown(nodes, more)))
        return not no_worse(after, before)

    members, nodes, more = find(st.tuples(fleets(), sizes, growth), breaks,
                                settings=settings(max_examples=3000, deadline=None,
                                                  database=None, derandomize=True))
    before = fleet_totals(members, _fresh(members, nodes))
    # the same case, re-planned from the smaller capacity's plan: no worse
    after = fleet_totals(members, replan(members, POOLS, capacities(grown(nodes, more)),
                                         _fresh(members, nodes), Objective.COST))
    assert no_worse(after, before)


def _small_fleet(kinds: list[tuple[str, str, int]]) -> list[Member]:
    mds = []
    for index, (params, quant, priority) in enumerate(kinds):
        mds.append(parse_model_deployment({
            "apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"m{index:02d}", "namespace": "ns"},
            "spec": {"model": {"name": "m", "source": "hf://org/m", "parameters": params,
                               "quantization": quant, "contextLength": 2048},
                     "slo": {"latencyP95Ms": 3000},
                     "expectedLoad": {"requestsPerSecond": "0.05", "promptTokens": 256,
                                      "outputTokens": 128},
                     "scaling": {"maxReplicas": 8}, "priority": priority}}))
    return members_of(mds, POOLS)


def test_a_node_added_elsewhere_does_not_cost_a_running_fleet_its_packing() -> None:
    """Found by the search above against the re-plan before 'what runs stays exactly where
    it runs': the running replicas were re-packed first-fit in another order on the mixed
    4/8-vCPU nodes, one no longer fitted where it ran, and the fleet got dearer."""
    members = _small_fleet([("135M", "q4_1", 0), ("360M", "q4_k_m", 1)]
                           + [("135M", "q4_1", 0)] * 9)
    nodes: Nodes = {"cpu-general": [4, 4, 4], "cpu-small": [4, 4, 8], "cpu-eu": [],
                    "gpu-l4": [], "gpu-h100": []}
    got = _fresh(members, nodes)
    before = fleet_totals(members, got)
    running = [seeded(m, got[m.key], BY_NAME) for m in members]
    after_got = assign(running, POOLS, capacities(grown(nodes, {"cpu-general": [4]})), 0.0,
                       Rebalance(0.0, 0.0))
    assert no_worse(fleet_totals(members, after_got), before)
    assert all(after_got[k].candidate is not None for k, a in got.items() if a.candidate)


def test_a_pool_that_shrank_below_what_runs_on_it_re_packs_its_models() -> None:
    """Staying exactly as it runs is for pools that still hold what runs: when a node goes
    (cordoned, deleted), the models that no longer fit move (here: spill) as before."""
    members = _small_fleet([("135M", "q4_1", 0)] * 6)
    nodes: Nodes = {"cpu-general": [], "cpu-small": [8, 8], "cpu-eu": [16],
                    "gpu-l4": [], "gpu-h100": []}
    got = _fresh(members, nodes)
    on_small = [k for k, a in got.items() if a.candidate and a.candidate.pool == "cpu-small"]
    assert len(on_small) >= 3
    running = [seeded(m, got[m.key], BY_NAME) for m in members]
    shrunk = capacities(nodes | {"cpu-small": [8]})
    after = assign(running, POOLS, shrunk, 0.0, Rebalance())
    assert_fits(after, shrunk)
    assert any(after[k].candidate is not None and after[k].candidate.pool != "cpu-small"
               for k in on_small)
