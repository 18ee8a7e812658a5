"""A watch event that lands while a write of ours is in flight is never overwritten by the
write's older answer: the cache would stay stale with no event left to correct it (the
Deployment controller's readyReplicas update racing our apply left a ModelDeployment
Ready=False for good, with its Deployment available). Nor is it by a re-LIST that was
served before it."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from wattserve.controller.reconciler import Reconciler

from tests.unit.test_controller_autoscaling_runtime import KEY, EventApi, drain, placed


class RacingApi(EventApi):
    """Answers each write with the object as the server wrote it, after handing the
    reconciler (as its watch would) a newer version written by someone else meanwhile."""

    rec: Reconciler | None = None
    newer_status: dict[str, Any] | None = None  # the Deployment's, as its controller wrote it
    newer_md: dict[str, Any] | None = None  # the ModelDeployment as a user changed it

    async def apply(self, obj: dict[str, Any], force: bool = True) -> Any:
        answer = copy.deepcopy(await super().apply(obj, force))
        if obj["kind"] == "Deployment" and self.rec is not None and self.newer_status:
            answer["metadata"]["resourceVersion"] = "40"
            answer["status"] = {"replicas": 1, "unavailableReplicas": 1}
            newer = copy.deepcopy(answer)
            newer["metadata"]["resourceVersion"] = "41"
            newer["status"], self.newer_status = self.newer_status, None
            self.rec.child_upsert(newer)
        return answer

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any],
                           resource_version: str | None = None) -> Any:
        answer = await super().patch_status(namespace, name, patch, resource_version)
        if self.rec is not None and self.newer_md:
            newer, self.newer_md = self.newer_md, None
            self.md = copy.deepcopy(newer)  # the server's object from now on
            self.rec.md_upsert(newer)
        return answer


def _deployment(rec: Reconciler) -> dict[str, Any]:
    return next(c for (kind, _), c in rec.children.of(KEY).items() if kind == "Deployment")


def test_a_deployment_status_update_racing_our_apply_stays_cached() -> None:
    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rec, api = await placed(RacingApi)
        cached = copy.deepcopy(_deployment(rec))
        cached["metadata"]["resourceVersion"] = "30"
        cached["spec"]["replicas"] = 7  # drifted: the reconcile applies it again
        rec.children.upsert(cached)  # as the watch delivered it
        api.rec, api.newer_status = rec, {  # both planned replicas became ready
            "observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
            "availableReplicas": 2, "updatedReplicas": 2}
        rec.enqueue(KEY, rec.trigger_of(KEY))
        await drain(rec)
        return _deployment(rec), api.status_patches

    cached, patches = asyncio.run(scenario())
    assert cached["metadata"]["resourceVersion"] == "41"
    assert cached["status"]["readyReplicas"] == 2
    ready = next(c for c in patches[-1]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Available")


def test_the_answer_to_our_apply_is_cached_when_no_event_came_meanwhile() -> None:
    async def scenario() -> dict[str, Any]:
        rec, api = await placed(RacingApi)
        drifted = copy.deepcopy(_deployment(rec))
        drifted["metadata"]["resourceVersion"] = "30"
        drifted["spec"]["replicas"] = 7
        rec.children.upsert(drifted)
        rec.enqueue(KEY, rec.trigger_of(KEY))
        api.rec = rec
        await drain(rec)
        return _deployment(rec)

    cached = asyncio.run(scenario())
    assert cached["spec"]["replicas"] != 7  # the applied object, as answered


def test_a_user_change_racing_our_status_patch_is_kept_and_reconciled() -> None:
    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rec, api = await placed(RacingApi)
        changed = copy.deepcopy(api.md)
        changed["metadata"]["resourceVersion"] = "900"
        changed["metadata"]["generation"] = 2
        changed["spec"]["slo"]["p95LatencyMs"] = 1234
        api.rec, api.newer_md = rec, changed
        rec.md_upsert({**copy.deepcopy(api.md), "status": {"observed": {"x": 1}},
                       "metadata": {**api.md["metadata"], "resourceVersion": "3"}})
        await drain(rec)
        return rec.mds[KEY], api.status_patches

    md, patches = asyncio.run(scenario())
    assert md["metadata"]["resourceVersion"] == "901"  # the change, then our patch of it
    assert md["spec"]["slo"]["p95LatencyMs"] == 1234
    assert patches[-1]["observedGeneration"] == 2  # the change was reconciled, not lost


class ListingApi(EventApi):
    """LISTs answer what the server held when the LIST was served (``listed``); while the
    first one is out, ``during`` runs (the watch delivering what changed meanwhile)."""

    def __init__(self, md: dict[str, Any]) -> None:
        super().__init__(md)
        self.listed: dict[str, list[dict[str, Any]]] = {}
        self.during: Any = None

    async def list_all(self, api_version: str, kind: str, namespace: str | None,
                       label_selector: str = "") -> list[dict[str, Any]]:
        items = copy.deepcopy(self.listed.get(kind, []))
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")}
                for item in items]


def _children(rec: Reconciler) -> dict[tuple[str, str], dict[str, Any]]:
    return rec.children.of(KEY)


def test_a_relist_drops_a_child_whose_deletion_the_watch_missed() -> None:
    async def scenario() -> dict[tuple[str, str], dict[str, Any]]:
        rec, api = await placed(ListingApi)
        api.listed = {"Deployment": [_deployment(rec)]}  # the Service is gone
        await rec.relist_children()
        return _children(rec)

    assert [kind for kind, _ in asyncio.run(scenario())] == ["Deployment"]


def test_a_relist_keeps_what_the_watch_delivered_while_it_was_out() -> None:
    async def scenario() -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
        rec, api = await placed(ListingApi)
        dep = copy.deepcopy(_deployment(rec))
        dep["metadata"]["resourceVersion"] = "50"
        rec.children.upsert(dep)
        service = next(c for (kind, _), c in _children(rec).items() if kind == "Service")
        api.listed = {"Deployment": [dep], "Service": [service]}  # served before the events
        ready = copy.deepcopy(dep)
        ready["metadata"]["resourceVersion"] = "51"
        ready["status"] = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}

        def watch() -> None:
            rec.child_upsert(ready)  # the Deployment controller's update
            rec.child_deleted(service)  # someone deletes the Service
        api.during = watch
        await rec.relist_children()
        return _deployment(rec), _children(rec)

    dep, children = asyncio.run(scenario())
    assert dep["metadata"]["resourceVersion"] == "51" and dep["status"]["readyReplicas"] == 2
    assert [kind for kind, _ in children] == ["Deployment"]  # the deleted one stays deleted
