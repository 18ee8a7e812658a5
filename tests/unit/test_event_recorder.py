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


def named_api(expired: set[str] | None = None) -> Any:
    """The API server as far as Events go: creates name them, patches need them to exist."""
    api = create_autospec(KubeApi, instance=True)
    stored: dict[str, dict[str, Any]] = {}

    async def create(api_version: str, kind: str, namespace: str, body: Any) -> Any:
        name = f"{body['metadata']['generateName']}{len(stored):04x}"
        stored[name] = {**body, "metadata": {**body["metadata"], "name": name}}
        return stored[name]

    async def patch(api_version: str, kind: str, namespace: str, name: str,
                    body: Any) -> Any:
        if name not in stored or name in (expired or set()):
            raise ApiError(404, f'events "{name}" not found')
        stored[name].update(body)
        return stored[name]

    api.create.side_effect = create
    api.patch.side_effect = patch
    api.stored = stored
    return api


CRASHING = Event("Warning", Reason.CRASH_LOOP_BACK_OFF, "pod m-1 is crash-looping")


def test_a_recurring_event_is_one_event_whose_count_grows() -> None:
    api = named_api()

    async def scenario() -> EventRecorder:
        rec = EventRecorder(api, "op-1", concurrency=1)
        for _ in range(3):
            rec.record(md("m"), CRASHING)
            await rec.flush()
        rec.record(md("m"), PLACED)  # another message: an Event of its own
        rec.record(md("other"), CRASHING)  # another object: an Event of its own
        await rec.flush()
        return rec

    rec = asyncio.run(scenario())
    assert api.create.await_count == 3 and rec.repeated == 2
    crash = [e for e in api.stored.values()
             if e["reason"] == "CrashLoopBackOff" and e["involvedObject"]["name"] == "m"]
    assert len(crash) == 1 and crash[0]["count"] == 3
    assert all(c.args[:3] == ("v1", "Event", "team-a") for c in api.patch.await_args_list)


def test_repeats_queued_together_are_patched_once_with_their_total() -> None:
    api = named_api()

    async def scenario() -> None:
        rec = EventRecorder(api, "op-1", concurrency=1)
        rec.record(md("m"), CRASHING)
        await rec.flush()
        for _ in range(4):  # queued before the sender runs
            rec.record(md("m"), CRASHING)
        await rec.flush()

    asyncio.run(scenario())
    assert api.create.await_count == 1 and api.patch.await_count == 1
    assert next(iter(api.stored.values()))["count"] == 5


def test_an_expired_event_starts_its_series_again() -> None:
    api = named_api()

    async def scenario() -> None:
        rec = EventRecorder(api, "op-1", concurrency=1)
        rec.record(md("m"), CRASHING)
        await rec.flush()
        api.stored.clear()  # the API server's event TTL removed it
        rec.record(md("m"), CRASHING)
        await rec.flush()

    asyncio.run(scenario())
    assert api.create.await_count == 2
    (again,) = api.stored.values()
    assert again["count"] == 1
