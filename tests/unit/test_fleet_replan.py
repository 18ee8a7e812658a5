"""Capacity events re-plan the models that may move: spilled ones when room frees (Reconciler
intake and its fleet choice, no API)."""

from __future__ import annotations

from typing import Any

from wattserve.controller.config import OperatorConfig
from wattserve.controller.reconciler import Reconciler

from tests.unit.factories import example_pool_docs
from tests.unit.test_render_support import example_md_doc


def _rec() -> Reconciler:
    rec = Reconciler(api=None, config=OperatorConfig())  # type: ignore[arg-type]
    for doc in example_pool_docs():
        rec.pool_upsert(doc)
    rec.index.record(("ns", "spilled"), "gpu-l4", None, spilled_from="cpu-general",
                     planned="gpu-l4")
    rec.index.record(("ns", "home"), "cpu-general", None, planned="cpu-general")
    rec.index.record(("ns", "gpu"), "gpu-h100", None, planned="gpu-h100")
    for name in ("spilled", "home", "gpu"):
        rec.mds[("ns", name)] = {"metadata": {"name": name, "namespace": "ns"}}
    return rec


def _queued(rec: Reconciler) -> set[tuple[str, str]]:
    return set(rec.queue._pending)


def _node(name: str, pool: str, cpu: str = "16") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"wattserve.dev/pool": pool}},
            "status": {"allocatable": {"cpu": cpu, "memory": "64Gi"},
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": "t1"}]}}


def test_a_new_node_re_plans_the_models_spilled_from_its_pool() -> None:
    rec = _rec()
    rec.node_upsert(_node("n1", "cpu-general"))
    assert _queued(rec) == {("ns", "spilled"), ("ns", "home")}


def test_a_node_heartbeat_re_plans_nothing() -> None:
    rec = _rec()
    rec.node_upsert(_node("n1", "cpu-general"))
    rec.queue._pending.clear()
    beat = _node("n1", "cpu-general")
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "t2"
    rec.node_upsert(beat)
    assert _queued(rec) == set()


def test_a_deleted_model_frees_room_for_those_spilled_from_its_pool() -> None:
    rec = _rec()
    rec.md_deleted({"metadata": {"name": "home", "namespace": "ns"}})
    assert ("ns", "spilled") in _queued(rec) and ("ns", "gpu") not in _queued(rec)


def _md(name: str, created: str) -> dict[str, Any]:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["metadata"] = {"name": name, "namespace": "ns", "uid": name, "generation": 1,
                       "creationTimestamp": created}
    return doc


def test_the_fleet_choice_counts_the_pools_nodes_and_queues_those_it_moves() -> None:
    rec = Reconciler(api=None, config=OperatorConfig())  # type: ignore[arg-type]
    for doc in example_pool_docs():
        rec.pool_upsert(doc)
    rec.node_upsert(_node("only", "cpu-general"))  # 1 node of 16 vCPU, not maxNodes 3
    for index in range(3):
        rec.mds[("ns", f"m{index}")] = _md(f"m{index}", f"2026-01-01T00:00:0{index}Z")
        rec.index.record(("ns", f"m{index}"), None, None)
    rec.queue._pending.clear()
    first = rec.fleet_choice(("ns", "m0"))
    assert first.plan is not None and first.plan.chosen is not None
    assert first.plan.chosen.pool == "cpu-general"
    third = rec.fleet_choice(("ns", "m2"))
    assert third.spilled_from == "cpu-general"
    assert third.plan is not None and third.plan.reason.startswith(
        "cpu-general full: 16/16 vCPU committed; gpu-l4 at")
    # the others' planned pool differs from the index: they are queued to follow it
    assert _queued(rec) == {("ns", "m1"), ("ns", "m2")}


def test_plans_are_reused_until_the_spec_or_the_pools_change() -> None:
    rec = Reconciler(api=None, config=OperatorConfig())  # type: ignore[arg-type]
    for doc in example_pool_docs():
        rec.pool_upsert(doc)
    pools = sorted(rec.pools.values(), key=lambda p: p.name)
    body = _md("a", "2026-01-01T00:00:00Z")
    first = rec.fleet.plan_of(("ns", "a"), body, pools)
    assert first is not None and rec.fleet.plan_of(("ns", "a"), body, pools) is not None
    assert rec.fleet.plan_of(("ns", "a"), body, pools)[1] is first[1]  # type: ignore[index]
    body["metadata"]["generation"] = 2
    again = rec.fleet.plan_of(("ns", "a"), body, pools)
    assert again is not None and again[1] is not first[1]
    rec.fleet.pools_changed()
    assert rec.fleet.plan_of(("ns", "a"), body, pools)[1] is not again[1]  # type: ignore[index]
    body["spec"]["slo"] = {"latencyP95Ms": "fast"}
    body["metadata"]["generation"] = 3
    assert rec.fleet.plan_of(("ns", "a"), body, pools) is None  # invalid: not in the fleet
