"""The reconciler's own writes come back as watch events: they queue no second reconcile
(one reconcile per change), while anybody else's change still does."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from wattserve.controller.reconciler import Reconciler
from wattserve.reconcile.scaling import ANNOTATION_SCALER_STATE

from tests.unit.test_controller_autoscaling_runtime import KEY, placed


def _bumped(md: dict[str, Any], **status: Any) -> dict[str, Any]:
    out = copy.deepcopy(md)
    out["metadata"]["resourceVersion"] = str(int(out["metadata"]["resourceVersion"]) + 7)
    out["status"] = {**out.get("status", {}), **status}
    return out


def _placed() -> tuple[Reconciler, Any]:
    return asyncio.run(placed())


def test_the_echo_of_our_status_patch_before_its_answer_queues_nothing() -> None:
    rec, _ = _placed()
    before = copy.deepcopy(rec.mds[KEY])
    echo = _bumped(before, observed={"requestRate": 1})
    rec._writing[KEY] = echo["status"]  # the patch in flight (see _write_status)
    rec.md_upsert(echo)
    assert not rec.queue and rec.mds[KEY]["metadata"]["resourceVersion"] == echo[
        "metadata"]["resourceVersion"]


def test_our_scaler_state_annotation_queues_nothing_but_an_activation_does() -> None:
    rec, _ = _placed()
    ours = _bumped(rec.mds[KEY])
    ours["metadata"]["annotations"] = {ANNOTATION_SCALER_STATE: '{"replicas": 2}'}
    rec.md_upsert(ours)
    assert not rec.queue
    theirs = _bumped(ours)
    theirs["metadata"]["annotations"]["wattserve.dev/activation-requested"] = "2026-11-30T00:00:00Z"
    rec.md_upsert(theirs)
    assert len(rec.queue) == 1


def test_a_status_write_by_someone_else_still_queues_a_reconcile() -> None:
    rec, _ = _placed()
    rec.md_upsert(_bumped(rec.mds[KEY], replicas={"desired": 3}))
    assert len(rec.queue) == 1


def test_the_echo_of_an_applied_child_queues_nothing_a_changed_child_does() -> None:
    rec, api = _placed()
    dep = next(o for o in api.applied if o["kind"] == "Deployment")
    cached = copy.deepcopy(rec.children.of(KEY)[("Deployment", dep["metadata"]["name"])])
    cached["metadata"]["resourceVersion"] = "5"
    rec.children.upsert(cached)  # what _carry_out caches from the apply's answer
    rec.child_upsert(copy.deepcopy(cached))  # its watch event
    assert not rec.queue
    changed = copy.deepcopy(cached)
    changed["metadata"]["resourceVersion"] = "99"
    changed["status"] = {"replicas": 1, "unavailableReplicas": 1}
    rec.child_upsert(changed)
    assert len(rec.queue) == 1


def test_a_deployment_status_change_of_timestamps_only_queues_nothing() -> None:
    rec, api = _placed()
    dep = next(o for o in api.applied if o["kind"] == "Deployment")
    cached = copy.deepcopy(rec.children.of(KEY)[("Deployment", dep["metadata"]["name"])])
    cached["metadata"]["resourceVersion"] = "5"
    cached["status"] = {"replicas": 2, "readyReplicas": 2, "conditions": [
        {"type": "Progressing", "status": "True", "lastUpdateTime": "2026-11-30T00:00:00Z"}]}
    rec.children.upsert(copy.deepcopy(cached))  # as cached from an earlier event
    later = copy.deepcopy(cached)
    later["metadata"]["resourceVersion"] = "6"
    later["status"]["conditions"][0]["lastUpdateTime"] = "2026-11-30T00:01:00Z"
    rec.child_upsert(later)
    assert not rec.queue  # nothing the reconcile reads changed
    ready = copy.deepcopy(later)
    ready["metadata"]["resourceVersion"] = "7"
    ready["status"]["readyReplicas"] = 1
    rec.child_upsert(ready)
    assert len(rec.queue) == 1


def test_the_late_echo_of_an_earlier_status_patch_queues_nothing_and_keeps_the_cache() -> None:
    """Two patches answered (rv 101, then 102) before the watch delivers the first: the
    event of rv 101 is ours, older than the cache, and changes neither queue nor cache."""
    rec, _ = _placed()
    base = copy.deepcopy(rec.mds[KEY])
    first, second = copy.deepcopy(base), copy.deepcopy(base)
    first["metadata"]["resourceVersion"] = "101"
    first["status"] = {**base.get("status", {}), "observed": {"requestRate": 1}}
    second["metadata"]["resourceVersion"] = "102"
    second["status"] = {**base.get("status", {}), "observed": {"requestRate": 2}}
    rec.wrote(KEY, first)  # what _write_status does with each answer
    rec.wrote(KEY, second)
    rec.mds[KEY] = copy.deepcopy(second)
    rec.md_upsert(copy.deepcopy(first))
    assert not rec.queue and rec.mds[KEY]["metadata"]["resourceVersion"] == "102"
    rec.md_upsert(copy.deepcopy(second))
    assert not rec.queue
    theirs = copy.deepcopy(second)
    theirs["metadata"]["resourceVersion"] = "103"
    theirs["status"]["observed"] = {"requestRate": 3}
    rec.md_upsert(theirs)  # a status write that is not ours still queues
    assert len(rec.queue) == 1
