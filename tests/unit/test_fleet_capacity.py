"""Pool capacity: counted from the pool's nodes, else maxNodes × node shape; first-fit."""

from __future__ import annotations

from typing import Any

import pytest
from wattserve.planning.capacity import (
    Ledger,
    PoolCapacity,
    Resources,
    pool_capacity,
    quantity,
    shape_capacity,
    template_request,
)

from tests.unit.factories import example_pools

POOLS = {pool.name: pool for pool in example_pools()}


def node(name: str, pool: str, cpu: str = "16", memory: str = "64Gi", gpus: str | None = None,
         **extra: Any) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus is not None:
        alloc["nvidia.com/gpu"] = gpus
    out: dict[str, Any] = {"metadata": {"name": name, "labels": {"wattserve.dev/pool": pool}},
                           "spec": {}, "status": {"allocatable": alloc}}
    out.update(extra)
    return out


@pytest.mark.parametrize(("text", "value"), [
    ("16", 16.0), ("15500m", 15.5), ("64Gi", 64 * 2**30), ("65536Ki", 65536 * 1024),
    ("1G", 1e9), ("0.5", 0.5), ("garbage", 0.0), ("", 0.0),
    # the rest of apimachinery's grammar: exponents, E/Ei, ".5", "5.", a sign
    ("1e3", 1e3), ("2E-2", 0.02), ("1E", 1e18), ("1Ei", 2.0**60), (".5", 0.5), ("5.", 5.0),
    ("+3", 3.0), ("-1", -1.0),
    # not quantities: "K" (the kilo is "k"), two dots, an exponent past a float
    ("1K", 0.0), ("1.5.2", 0.0), ("1e400", 0.0), ("e3", 0.0),
])
def test_kubernetes_quantities_parse(text: str, value: float) -> None:
    assert quantity(text) == pytest.approx(value)


def test_capacity_is_counted_from_the_pools_nodes_when_they_exist() -> None:
    nodes = [node("a", "cpu-general", cpu="15500m", memory="60Gi"),
             node("b", "cpu-general"), node("c", "gpu-l4", cpu="48", gpus="4")]
    cap = pool_capacity(POOLS["cpu-general"], nodes)
    assert cap.source == "nodes"
    assert cap.total == Resources(31.5, 124.0, 0)  # 2 nodes, not maxNodes 3


def test_capacity_falls_back_to_max_nodes_times_the_node_shape() -> None:
    cap = pool_capacity(POOLS["gpu-h100"], [node("a", "cpu-general")])
    assert cap.source == "maxNodes"
    assert cap.total == Resources(2 * 192.0, 2 * 2048.0, 16)


def test_cordoned_and_not_ready_nodes_hold_nothing() -> None:
    nodes = [node("a", "cpu-general", spec={"unschedulable": True}),
             node("b", "cpu-general",
                  status={"allocatable": {"cpu": "16", "memory": "64Gi"},
                          "conditions": [{"type": "Ready", "status": "False"}]}),
             node("c", "cpu-general")]
    cap = pool_capacity(POOLS["cpu-general"], nodes)
    assert cap.source == "nodes" and len(cap.nodes) == 1


def test_gpus_are_counted_from_the_pools_gpu_resource() -> None:
    cap = pool_capacity(POOLS["gpu-l4"], [node("g", "gpu-l4", cpu="48", memory="192Gi",
                                                gpus="4")])
    assert cap.total.gpus == 4


def test_a_replica_goes_on_one_node_all_replicas_or_none() -> None:
    ledger = Ledger(PoolCapacity("p", (Resources(4, 16), Resources(4, 16)), "nodes"))
    assert not ledger.fits(Resources(8, 1), 1)  # 8 vCPUs free in total, 4 per node
    assert ledger.place(Resources(4, 1), 3) is None  # all or nothing
    assert ledger.used == Resources()
    assert ledger.place(Resources(4, 1), 2) is not None
    assert ledger.usage() == "8/8 vCPU committed"
    assert not ledger.fits(Resources(1, 1), 1)


def test_released_allocations_free_their_nodes() -> None:
    ledger = Ledger(shape_capacity(POOLS["cpu-general"]))
    taken = ledger.place(Resources(4, 2), 12)
    assert taken is not None and not ledger.fits(Resources(1, 1), 1)
    ledger.release(taken)
    assert ledger.used == Resources()


def test_what_runs_is_counted_even_over_capacity() -> None:
    ledger = Ledger(shape_capacity(POOLS["cpu-general"]))
    ledger.force(Resources(4, 2), 13)  # one more than 3 × 16 vCPUs hold
    assert ledger.used.cpu == 52
    assert not ledger.fits(Resources(1, 1), 1)


def test_a_deployments_pod_request_is_read_from_its_template() -> None:
    dep = {"spec": {"template": {"spec": {"containers": [
        {"resources": {"requests": {"cpu": "4", "memory": "2Gi", "nvidia.com/gpu": "1"}}},
        {"resources": {"requests": {"cpu": "500m"}}},
    ]}}}}
    assert template_request(dep, "nvidia.com/gpu") == Resources(4.5, 2.0, 1)
    assert template_request(dep, None) == Resources(4.5, 2.0, 0)
