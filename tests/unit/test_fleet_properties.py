"""Properties of fleet placement on generated fleets and pool sizes (Hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wattserve.api import ServingPool, parse_model_deployment
from wattserve.planning import optimum
from wattserve.planning.capacity import PoolCapacity, Resources, replica_request, shape_capacity
from wattserve.planning.fleet import Member, assign, members_of, totals

from tests.unit.factories import example_pools

POOLS = example_pools()
BY_NAME = {pool.name: pool for pool in POOLS}
MODELS = [("135M", "q4_1", 2048), ("1.5B", "q4_k_m", 4096), ("8B", "fp8", 8192),
          ("8B", "q4_k_m", 8192), ("70B", "fp8", 8192)]


@st.composite
def fleets(draw: Any) -> list[Member]:
    count = draw(st.integers(1, 10))
    mds = []
    for index in range(count):
        params, quant, context = draw(st.sampled_from(MODELS))
        rps = draw(st.sampled_from(["0.05", "0.5", "2", "8", "30"]))
        doc = {
            "apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"m{index:02d}", "namespace": "ns"},
            "spec": {
                "model": {"name": "m", "source": "hf://org/m", "parameters": params,
                          "quantization": quant, "contextLength": context},
                "slo": {"latencyP95Ms": draw(st.sampled_from([3000, 10000, 30000]))},
                "expectedLoad": {"requestsPerSecond": rps, "promptTokens": 256,
                                 "outputTokens": 128},
                "scaling": {"maxReplicas": 20},
                "priority": draw(st.integers(-2, 2)),
            },
        }
        mds.append(parse_model_deployment(doc))
    return members_of(mds, POOLS)


sizes = st.fixed_dictionaries({pool.name: st.integers(0, 3) for pool in POOLS})
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def capacities(nodes: dict[str, int]) -> dict[str, PoolCapacity]:
    return {name: shape_capacity(BY_NAME[name], count) for name, count in nodes.items()}


@SETTINGS
@given(fleets(), sizes)
def test_a_fleet_never_over_commits_a_pool(members: list[Member], nodes: dict[str, int]) -> None:
    caps = capacities(nodes)
    got = assign(members, POOLS, caps)
    used: dict[str, Resources] = {name: Resources() for name in caps}
    for member in members:
        cand = got[member.key].candidate
        if cand is None:
            continue
        request = replica_request(cand, BY_NAME[cand.pool])
        per_node = caps[cand.pool].nodes[0] if caps[cand.pool].nodes else Resources()
        assert per_node.holds(request)  # every replica fits on one node
        used[cand.pool] = used[cand.pool] + request.times(got[member.key].replicas)
    for name, cap in caps.items():
        assert cap.total.holds(used[name]), f"{name}: {used[name]} > {cap.total}"


@SETTINGS
@given(fleets(), sizes)
def test_greedy_is_never_better_than_the_optimum(members: list[Member],
                                                 nodes: dict[str, int]) -> None:
    caps = capacities(nodes)
    greedy = totals(members, {k: a.candidate for k, a in assign(members, POOLS, caps).items()})
    best = optimum.solve(members, POOLS, caps, time_limit_s=20).totals
    assert best.placed >= greedy.placed
    if best.placed == greedy.placed:
        assert best.usd_per_hour <= greedy.usd_per_hour * (1 + 1e-6) + 1e-9


@SETTINGS
@given(fleets(), sizes, st.sampled_from([pool.name for pool in POOLS]))
def test_adding_capacity_never_makes_the_optimal_fleet_cost_more(
        members: list[Member], nodes: dict[str, int], grown: str) -> None:
    before = optimum.solve(members, POOLS, capacities(nodes), time_limit_s=20).totals
    after = optimum.solve(members, POOLS, capacities(nodes | {grown: nodes[grown] + 1}),
                          time_limit_s=20).totals
    assert after.placed >= before.placed
    if after.placed == before.placed:
        assert after.usd_per_hour <= before.usd_per_hour * (1 + 1e-4) + 1e-9


# The greedy planned from nothing (first fit in priority order) is NOT monotone in capacity;
# what the operator and `wattserve plan --incumbent` produce is: re-planned from the plan
# before, never worse (tests/unit/test_fleet_monotone.py; docs/placement.md §7).


def test_the_optimum_places_what_fits_and_beats_all_gpu_on_the_example_twelve() -> None:
    mds = []
    for index in range(12):
        doc: dict[str, Any] = {
            "apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"s{index:02d}", "namespace": "ns"},
            "spec": {"model": {"name": "s", "source": "hf://org/s", "parameters": "135M",
                               "quantization": "q4_1", "contextLength": 2048},
                     "slo": {"latencyP95Ms": 3000},
                     "expectedLoad": {"requestsPerSecond": "2", "promptTokens": 64,
                                      "outputTokens": 64}},
        }
        mds.append(parse_model_deployment(doc))
    members = members_of(mds, POOLS)
    best = optimum.solve(members, POOLS)
    gpu: list[ServingPool] = [pool for pool in POOLS if pool.spec.is_gpu]
    on_gpu = totals(members, {k: a.candidate for k, a in assign(members, gpu).items()})
    assert best.status == "optimal" and best.totals.placed == 12
    assert best.totals.usd_per_hour < on_gpu.usd_per_hour
