"""The work queue: de-duplication, re-run after a change during processing, backoff."""

from __future__ import annotations

import asyncio

from wattserve.controller.workqueue import WorkQueue
from wattserve.reconcile.drift import first_difference, matches


def test_adding_a_queued_key_twice_processes_it_once() -> None:
    async def scenario() -> list[str]:
        q: WorkQueue[str] = WorkQueue()
        for key in ("a", "b", "a", "a"):
            q.add(key)
        got = [await q.get(), await q.get()]
        assert len(q) == 0
        return got

    assert asyncio.run(scenario()) == ["a", "b"]


def test_key_changed_while_processing_runs_again_afterwards() -> None:
    async def scenario() -> bool:
        q: WorkQueue[str] = WorkQueue()
        q.add("a")
        key = await q.get()
        q.add("a")  # an event arrives mid-reconcile
        assert len(q) == 0  # not processed concurrently
        q.done(key)
        return len(q) == 1

    assert asyncio.run(scenario())


def test_failures_back_off_exponentially_and_honour_retry_after() -> None:
    async def scenario() -> list[float]:
        q: WorkQueue[str] = WorkQueue(base_delay=0.5, max_delay=4)
        delays = [q.retry("a") for _ in range(5)]
        q.succeeded("a")
        delays.append(q.retry("a"))
        delays.append(q.retry("b", retry_after=3.0))
        return delays

    assert asyncio.run(scenario()) == [0.5, 1.0, 2.0, 4.0, 4.0, 0.5, 3.0]


def test_retried_key_comes_back_after_its_delay() -> None:
    async def scenario() -> str:
        q: WorkQueue[str] = WorkQueue(base_delay=0.05)
        q.retry("a")
        return await asyncio.wait_for(q.get(), timeout=2)

    assert asyncio.run(scenario()) == "a"


def test_drift_ignores_fields_others_add_but_not_ours_changed() -> None:
    desired = {"spec": {"replicas": 2, "template": {"containers": [{"image": "a", "env": []}]}}}
    live = {"spec": {"replicas": 2, "paused": False,
                     "template": {"containers": [{"image": "a", "env": [], "tty": False}]}},
            "status": {"replicas": 2}}
    assert matches(desired, live)
    live["spec"]["template"]["containers"][0]["image"] = "b"
    assert first_difference(desired, live) == "spec.template.containers[0].image"
    live["spec"]["template"]["containers"].append({"image": "sidecar"})
    assert not matches(desired, live)
