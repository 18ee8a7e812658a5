"""Placing newcomers on the last fleet assignment equals placing the whole fleet afresh
(planning/incremental.py, controller/fleetstate.py; Hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from wattserve.api import parse_model_deployment
from wattserve.controller.fleetstate import FleetState
from wattserve.planning.capacity import PoolCapacity, shape_capacity
from wattserve.planning.fleet import Member, Rebalance, members_of, seeded
from wattserve.planning.incremental import place_fleet
from wattserve.planning.refine import place

from tests.unit.factories import example_pools

POOLS = example_pools()
BY_NAME = {pool.name: pool for pool in POOLS}
MODELS = [("135M", "q4_1", 2048), ("1.5B", "q4_k_m", 4096), ("8B", "fp8", 8192),
          ("8B", "q4_k_m", 8192), ("70B", "fp8", 8192)]
POLICY = Rebalance(min_gain=0.1, dwell_seconds=300.0)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def doc(index: int, params: str, quant: str, context: int, rps: str, priority: int,
        pool: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": "m", "source": "hf://org/m", "parameters": params,
                  "quantization": quant, "contextLength": context},
        "slo": {"latencyP95Ms": 30000},
        "expectedLoad": {"requestsPerSecond": rps, "promptTokens": 256, "outputTokens": 128},
        "scaling": {"maxReplicas": 20},
        "priority": priority,
    }
    if pool is not None:
        spec["placement"] = {"pool": pool}
    return {"apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"m{index:03d}", "namespace": "ns", "uid": f"u{index}",
                         "generation": 1,
                         "creationTimestamp": f"2026-01-01T00:{index // 60:02d}:"
                                              f"{index % 60:02d}Z"},
            "spec": spec}


@st.composite
def docs(draw: Any) -> list[dict[str, Any]]:
    out = []
    for index in range(draw(st.integers(1, 14))):
        params, quant, context = draw(st.sampled_from(MODELS))
        out.append(doc(index, params, quant, context,
                       draw(st.sampled_from(["0.05", "0.5", "2", "8"])),
                       draw(st.integers(-1, 1)),
                       draw(st.sampled_from([None, None, "cpu-general"]))))
    return out


sizes = st.fixed_dictionaries({pool.name: st.integers(0, 4) for pool in POOLS})


def capacities(nodes: dict[str, int]) -> dict[str, PoolCapacity]:
    return {name: shape_capacity(BY_NAME[name], count) for name, count in nodes.items()}


def members(bodies: list[dict[str, Any]]) -> list[Member]:
    mds = [parse_model_deployment(body) for body in bodies]
    return [replace(m, created=str(body["metadata"]["creationTimestamp"]))
            for m, body in zip(members_of(mds, POOLS), bodies, strict=True)]


@SETTINGS
@given(docs(), sizes, st.integers(0, 14), st.booleans())
def test_newcomers_placed_on_the_last_assignment_equal_a_full_pass(
        bodies: list[dict[str, Any]], nodes: dict[str, int], split: int,
        running: bool) -> None:
    fleet = members(bodies)
    split = min(split, len(fleet))
    base, newcomers = fleet[:split], fleet[split:]
    caps = capacities(nodes)
    if running:  # the base runs where a first pass put it (placed 400 s ago)
        first = place(base, POOLS, caps, 0.0, POLICY)
        base = [replace(seeded(m, first[m.key], BY_NAME), placed_at=600.0) for m in base]
    placement = place_fleet(base, POOLS, caps, 1000.0, POLICY)
    assert placement.result == place(base, POOLS, caps, 1000.0, POLICY)
    got = placement.add(newcomers)
    event("full pass needed" if got is None else "newcomers placed on the last assignment")
    if got is None:  # a full pass is needed: the placement says so, and is not reused
        assert placement.add([]) is None
        return
    assert set(got) == {m.key for m in newcomers}
    assert placement.result == place(base + newcomers, POOLS, caps, 1000.0, POLICY)


def test_a_create_wave_is_placed_without_a_full_pass_per_newcomer() -> None:
    """The benchmark's case: each newcomer is placed on the last assignment, and the result
    is the full pass's."""
    fleet = members([doc(i, "135M", "q4_1", 2048, "0.1", 0, "cpu-general")
                     for i in range(12)])
    caps = capacities({"cpu-general": 3})
    placement = place_fleet(fleet[:1], POOLS, caps, 0.0, POLICY)
    for member in fleet[1:]:
        got = placement.add([member])
        assert got is not None and got[member.key].candidate is not None
    assert placement.result == place(fleet, POOLS, caps, 0.0, POLICY)


def test_a_newcomer_that_sorts_before_the_others_needs_a_full_pass() -> None:
    fleet = members([doc(i, "135M", "q4_1", 2048, "0.1", 0) for i in range(3)])
    placement = place_fleet(fleet[1:], POOLS, None, 0.0, POLICY)
    assert placement.add([fleet[0]]) is None  # older: its turn comes first


def test_a_newcomer_with_a_workload_running_needs_a_full_pass() -> None:
    fleet = members([doc(i, "135M", "q4_1", 2048, "0.1", 0) for i in range(2)])
    placement = place_fleet(fleet[:1], POOLS, None, 0.0, POLICY)
    first = place(fleet, POOLS, None, 0.0, POLICY)
    assert placement.add([seeded(fleet[1], first[fleet[1].key], BY_NAME)]) is None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs(), st.lists(st.integers(0, 13), max_size=14))
def test_the_operators_fleet_state_equals_a_fresh_one_after_any_arrivals(
        bodies: list[dict[str, Any]], order: list[int]) -> None:
    """Arrivals in any order (creates out of order, re-arrivals): each assignment the
    operator's FleetState gives equals a fresh FleetState's full pass at the same time."""
    arrivals = [bodies[i % len(bodies)] for i in order] + bodies
    state = FleetState(POLICY)
    mds: dict[tuple[str, str], dict[str, Any]] = {}
    for step, body in enumerate(arrivals):
        key = ("ns", body["metadata"]["name"])
        if key not in mds:
            mds[key] = body
            state.added(key)
        now = 1000.0 + step * 0.1
        got, changed = state.assignment(mds, POOLS, lambda _k: {}, now=now)
        fresh = FleetState(POLICY)
        expected, _ = fresh.assignment(mds, POOLS, lambda _k: {}, now=state._computed_at)
        assert {k: a for k, (_, a) in got.items()} == {k: a for k, (_, a) in expected.items()}
        assert set(changed) <= set(got)
