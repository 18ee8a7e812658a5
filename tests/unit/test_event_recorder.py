"""Events are posted in the background, a few at a time, and never lost silently."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import create_autospec

from wattserve.api.conditions import Reason
from wattserve.controller import metrics
from wattserve.controller.events import EventRecorder
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.reconcile.decide import Event


def md(name: str) -> dict[str, Any]:
    return {"apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}"}}


PLACED = Event("Normal", Reason.PLACED, "placed on cpu-general")


def slow_api(in_flight: list[int], peak: list[int], fail: set[str] | None = None) -> Any:
    api = create_autospec(KubeApi, instance=True)

    async def create(api_version: str, kind: str, namespace: str, body: Any) -> Any:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            await asyncio.sleep(0.002)
            if fail and body["involvedObject"]["name"] in fail:
                raise ApiError(500, "etcd is away")
            return body
        finally:
            in_flight[0] -= 1

    api.create.side_effect = create
    return api


def posted_names(api: Any) -> list[str]:
    return [c.args[3]["involvedObject"]["name"] for c in api.create.await_args_list]


def test_at_most_concurrency_events_are_in_flight_and_all_are_posted_in_order() -> None:
    in_flight, peak = [0], [0]
    api = slow_api(in_flight, peak)

    async def scenario() -> EventRecorder:
        rec = EventRecorder(api, "op-1", concurrency=2)
        for i in range(40):
            rec.record(md(f"m{i:02d}"), PLACED)
        assert len(rec) > 0  # recording returns at once: nothing waits for the API
        await rec.flush()
        return rec

    rec = asyncio.run(scenario())
    assert peak[0] == 2
    assert rec.posted == 40 and len(rec) == 0
    assert posted_names(api) == [f"m{i:02d}" for i in range(40)]
    body = api.create.await_args_list[0].args[3]
    assert body["involvedObject"]["uid"] == "uid-m00" and body["reason"] == "Placed"
    assert api.create.await_args_list[0].args[:3] == ("v1", "Event", "team-a")


def test_a_full_queue_drops_its_oldest_and_counts_them() -> None:
    in_flight, peak = [0], [0]
    api = slow_api(in_flight, peak)
    before = metrics.EVENTS_DROPPED._value.get()

    async def scenario() -> EventRecorder:
        rec = EventRecorder(api, "op-1", concurrency=1, capacity=5)
        for i in range(12):  # the sender starts only at the first await: 12 queued at once
            rec.record(md(f"m{i:02d}"), PLACED)
        await rec.flush()
        return rec

    rec = asyncio.run(scenario())
    assert metrics.EVENTS_DROPPED._value.get() - before == 7
    assert posted_names(api) == [f"m{i:02d}" for i in range(7, 12)]
    assert rec.posted == 5


def test_a_failed_post_is_logged_and_the_others_still_go_out(caplog: Any) -> None:
    in_flight, peak = [0], [0]
    api = slow_api(in_flight, peak, fail={"m01"})

    async def scenario() -> EventRecorder:
        rec = EventRecorder(api, "op-1", concurrency=1)
        for i in range(3):
            rec.record(md(f"m{i:02d}"), PLACED)
        await rec.flush()
        return rec

    rec = asyncio.run(scenario())
    assert posted_names(api) == ["m00", "m01", "m02"]  # tried once each, in order
    assert rec.posted == 2
    assert "could not post event Placed on team-a" in caplog.text
