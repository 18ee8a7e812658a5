"""Nodes and workload requests typed once at the edge (api/cluster.py): what pool capacity
reads, whatever shape the body comes in."""

from __future__ import annotations

from wattserve.api.cluster import Node, container_requests
from wattserve.planning.capacity import Resources, pool_capacity, schedulable

from tests.unit.factories import example_pools

POOLS = {pool.name: pool for pool in example_pools()}


def test_a_node_keeps_what_capacity_reads() -> None:
    node = Node.from_body({
        "metadata": {"name": "n1", "labels": {"wattserve.dev/pool": "cpu-general"},
                     "managedFields": [{}]},
        "spec": {"unschedulable": True},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi"}, "conditions": [
            {"type": "Ready", "status": "False", "lastHeartbeatTime": "2026-11-30T00:00:00Z"},
            {"type": "MemoryPressure", "status": "False"}]},
    })
    assert node == Node("n1", {"wattserve.dev/pool": "cpu-general"}, unschedulable=True,
                        not_ready=True, allocatable={"cpu": "16", "memory": "64Gi"})
    assert not schedulable(node)


def test_malformed_node_bodies_read_as_empty_not_as_a_crash() -> None:
    for body in ({}, {"metadata": None, "spec": [], "status": "x"},
                 {"status": {"conditions": "Ready", "allocatable": None,
                             "capacity": {"cpu": 4}}}):
        node = Node.from_body(body)
        assert schedulable(node)
    assert Node.from_body({"status": {"capacity": {"cpu": 4}}}).allocatable == {"cpu": "4"}


def test_typed_nodes_and_bodies_give_the_same_capacity() -> None:
    body = {"metadata": {"name": "a", "labels": {"wattserve.dev/pool": "cpu-general"}},
            "status": {"allocatable": {"cpu": "15500m", "memory": "60Gi"}}}
    pool = POOLS["cpu-general"]
    assert pool_capacity(pool, [body]) == pool_capacity(pool, [Node.from_body(body)])
    assert pool_capacity(pool, [body]).nodes == (Resources(15.5, 60.0, 0),)


def test_container_requests_of_a_template() -> None:
    dep = {"spec": {"template": {"spec": {"containers": [
        {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
        {"name": "no-resources"}, "garbage"]}}}}
    assert container_requests(dep) == [{"cpu": "500m", "memory": "1Gi"}, {}, {}]
    assert container_requests({"spec": None}) == []
