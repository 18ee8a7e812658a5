"""Pool events re-plan exactly the affected ModelDeployments (Reconciler intake, no API)."""

from __future__ import annotations

import copy

from wattserve.controller.config import OperatorConfig
from wattserve.controller.reconciler import Reconciler

from tests.unit.factories import example_pool_docs


def _rec() -> Reconciler:
    rec = Reconciler(api=None, config=OperatorConfig())  # type: ignore[arg-type]
    for doc in example_pool_docs():
        rec.pool_upsert(doc)
    for name in ("a", "b", "c", "d"):
        rec.mds[("ns", name)] = {"metadata": {"name": name, "namespace": "ns"}}
    rec.index.record(("ns", "a"), "cpu-general", None)
    rec.index.record(("ns", "b"), "gpu-l4", None)
    rec.index.record(("ns", "c"), "cpu-general", "gpu-h100")
    rec.index.record(("ns", "d"), None, None)
    assert len(rec.queue) == 0
    return rec


def _queued(rec: Reconciler) -> set[tuple[str, str]]:
    return set(rec.queue._pending)


def test_pool_spec_update_queues_those_placed_on_it_and_unplaced() -> None:
    rec = _rec()
    doc = copy.deepcopy(example_pool_docs()[1])  # gpu-l4
    doc["spec"]["pricing"]["usdPerNodeHour"] = "1.0"
    rec.pool_upsert(doc)
    assert _queued(rec) == {("ns", "b"), ("ns", "d")}


def test_unchanged_pool_event_queues_nothing() -> None:
    rec = _rec()
    rec.pool_upsert(example_pool_docs()[0])
    assert _queued(rec) == set()


def test_pool_deletion_queues_pinned_placed_and_unplaced() -> None:
    rec = _rec()
    rec.pool_deleted(example_pool_docs()[2])  # gpu-h100
    assert _queued(rec) == {("ns", "c"), ("ns", "d")}
    assert "gpu-h100" not in rec.pools


def test_invalid_pool_is_dropped_and_re_plans() -> None:
    rec = _rec()
    doc = copy.deepcopy(example_pool_docs()[0])
    doc["spec"]["power"]["idleWatts"] = 1000  # > maxWatts
    rec.pool_upsert(doc)
    assert "cpu-general" not in rec.pools
    assert _queued(rec) == {("ns", "a"), ("ns", "c"), ("ns", "d")}
