"""A ServingPool's status books what the fleet assignment placed there, names an invalid
spec, and is written only when it changes (reconcile/poolstatus.py, pure)."""

from __future__ import annotations

from wattserve.planning.capacity import PoolCapacity, Resources
from wattserve.planning.fleet import Assignment
from wattserve.planning.placement import Candidate
from wattserve.reconcile.poolstatus import FIELDS, PoolSeen, pool_status, status_patch

NOW, LATER = "2026-12-02T10:00:00Z", "2026-12-02T10:05:00Z"
NODE = Resources(16.0, 64.0, 0)
CPU_POOL = PoolCapacity("cpu-general", (NODE, NODE, NODE), "nodes")
GPU_POOL = PoolCapacity("gpu-l4", (Resources(48.0, 192.0, 4),) * 2, "maxNodes", gpu=True)


def _on(pool: str, key: str, replicas: int, request: Resources) -> Assignment:
    cand = Candidate(pool, "llamacpp", "cpu", 0, 4, 3, True, "chosen", replicas=replicas)
    return Assignment(("ns", key), cand, "chosen", request=request, replicas=replicas)


FLEET = [
    _on("cpu-general", "a", 2, Resources(4.0, 1.0, 0)),
    _on("cpu-general", "b", 3, Resources(2.0, 2.0, 0)),
    _on("gpu-l4", "c", 1, Resources(8.0, 40.0, 2)),
    Assignment(("ns", "unplaced"), None, "no feasible pool has room", full=True),
]


def test_counts_models_replicas_and_committed_resources_of_its_own_pool_only() -> None:
    st = pool_status(PoolSeen("cpu-general", 3, {}), CPU_POOL, FLEET, NOW)
    assert st["observedGeneration"] == 3
    assert (st["modelDeployments"], st["replicas"]) == (2, 5)
    assert st["committed"] == {"cpu": "14", "memoryGiB": "8", "gpus": 0}
    assert st["capacity"] == {"source": "nodes", "nodes": 3, "cpu": "48",
                              "memoryGiB": "192", "gpus": 0}
    assert st["usage"] == "14/48 vCPU committed"
    [cond] = st["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Accepted", "True", "Accepted")
    assert "3 nodes" in cond["message"] and cond["observedGeneration"] == 3


def test_a_gpu_pool_counts_gpus_and_says_its_capacity_is_the_node_shape() -> None:
    st = pool_status(PoolSeen("gpu-l4", 1, {}), GPU_POOL, FLEET, NOW)
    assert (st["modelDeployments"], st["replicas"], st["usage"]) == (1, 1, "2/8 GPUs committed")
    assert st["capacity"]["source"] == "maxNodes"
    assert "maxNodes (2)" in st["conditions"][0]["message"]


def test_an_empty_pool_books_nothing() -> None:
    st = pool_status(PoolSeen("cpu-idle", 1, {}), CPU_POOL, FLEET, NOW)
    assert (st["modelDeployments"], st["replicas"]) == (0, 0)
    assert st["usage"] == "0/48 vCPU committed"


def test_an_invalid_pool_says_why_it_is_ignored_and_clears_its_figures() -> None:
    before = pool_status(PoolSeen("cpu-general", 1, {}), CPU_POOL, FLEET, NOW)
    seen = PoolSeen("cpu-general", 2, {k: v for k, v in before.items() if v is not None},
                    error="spec.node.cpu: must be > 0")
    st = pool_status(seen, None, FLEET, LATER)
    [cond] = st["conditions"]
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec")
    assert "spec.node.cpu" in cond["message"] and cond["lastTransitionTime"] == LATER
    patch = status_patch(seen, st)
    assert patch is not None
    for gone in ("modelDeployments", "replicas", "capacity", "committed", "usage"):
        assert patch[gone] is None  # a merge patch removes them


def test_nothing_is_written_when_nothing_changed_and_the_transition_time_is_kept() -> None:
    first = pool_status(PoolSeen("cpu-general", 3, {}), CPU_POOL, FLEET, NOW)
    stored = {k: v for k, v in first.items() if v is not None}
    again = pool_status(PoolSeen("cpu-general", 3, stored), CPU_POOL, FLEET, LATER)
    assert status_patch(PoolSeen("cpu-general", 3, stored), again) is None
    fewer = pool_status(PoolSeen("cpu-general", 3, stored), CPU_POOL, FLEET[1:], LATER)
    patch = status_patch(PoolSeen("cpu-general", 3, stored), fewer)
    assert patch == {"modelDeployments": 1, "replicas": 3,
                     "committed": {"cpu": "6", "memoryGiB": "6", "gpus": 0},
                     "usage": "6/48 vCPU committed"}


def test_the_first_write_sets_every_field_it_has() -> None:
    st = pool_status(PoolSeen("cpu-general", 1, {}), None, FLEET, NOW)
    patch = status_patch(PoolSeen("cpu-general", 1, {}), st)
    assert patch is not None
    assert set(patch) == set(FIELDS) - {"capacity", "usage"}  # no capacity known yet
