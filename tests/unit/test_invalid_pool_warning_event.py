"""An invalid ServingPool (one the API server let through, e.g. under an older CRD) gets
``Accepted=False`` and one Warning Event naming the field, once per transition: a restart
that finds the same condition posts nothing (reconcile/poolstatus.py, controller/poolstatus.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest.mock import create_autospec

from wattserve.controller.events import EventRecorder
from wattserve.controller.kubeapi import KubeApi
from wattserve.controller.poolstatus import write_pool_statuses
from wattserve.reconcile.poolstatus import PoolSeen, pool_events, pool_status, status_patch

NOW, LATER = "2026-12-03T08:00:00Z", "2026-12-03T08:05:00Z"
ERROR = "spec.accelerator.resourceName: 'memory': must be an extended resource"


def _written(seen: PoolSeen, now: str = NOW) -> tuple[dict[str, Any], dict[str, Any]]:
    desired = pool_status(seen, None, [], now)
    patch = status_patch(seen, desired)
    assert patch is not None
    return patch, {k: v for k, v in {**seen.status, **patch}.items() if v is not None}


def test_turning_invalid_is_one_warning_naming_the_field() -> None:
    valid = PoolSeen("gpu-l4", 1, {})
    _, stored = _written(valid)
    assert pool_events(valid, _written(valid)[0]) == ()  # Accepted=True: no Event
    invalid = PoolSeen("gpu-l4", 2, stored, error=ERROR)
    patch, stored = _written(invalid, LATER)
    [event] = pool_events(invalid, patch)
    assert (event.type, event.reason) == ("Warning", "InvalidSpec")
    assert "spec.accelerator.resourceName" in event.message


def test_the_same_invalid_spec_again_posts_nothing_and_a_new_reason_posts_again() -> None:
    seen = PoolSeen("gpu-l4", 2, {}, error=ERROR)
    patch, stored = _written(seen)
    assert len(pool_events(seen, patch)) == 1
    again = PoolSeen("gpu-l4", 2, stored, error=ERROR)  # a restart: same status
    assert status_patch(again, pool_status(again, None, [], LATER)) is None
    other = PoolSeen("gpu-l4", 3, stored, error="spec.node.cpu: must be >= 1")
    patch, _ = _written(other, LATER)
    [event] = pool_events(other, patch)
    assert "spec.node.cpu" in event.message


def test_the_writer_posts_the_warning_on_the_pool_in_the_default_namespace() -> None:
    api = create_autospec(KubeApi, instance=True)
    posted: list[tuple[str, dict[str, Any]]] = []

    async def create(api_version: str, kind: str, namespace: str, body: Any) -> Any:
        posted.append((namespace, body))
        return body

    api.create.side_effect = create
    fleet = SimpleNamespace(last=lambda: ([], {}), nodes={})
    rec: Any = SimpleNamespace(
        fleet=fleet, mds={}, pools={}, api=api, events=EventRecorder(api, "op-0"),
        pools_seen={"gpu-l4": PoolSeen("gpu-l4", 2, {}, error=ERROR, uid="uid-pool")})

    async def run() -> tuple[int, int]:
        first = await write_pool_statuses(rec)
        second = await write_pool_statuses(rec)  # nothing changed: no write, no Event
        await rec.events.flush()
        return first, second

    assert asyncio.run(run()) == (1, 0)
    api.patch_pool_status.assert_called_once()
    [(namespace, body)] = posted
    assert namespace == "default" and body["metadata"]["namespace"] == "default"
    assert body["involvedObject"] == {"apiVersion": "wattserve.dev/v1alpha1",
                                      "kind": "ServingPool", "name": "gpu-l4",
                                      "uid": "uid-pool"}
    assert (body["type"], body["reason"]) == ("Warning", "InvalidSpec")
    assert ERROR in body["message"]
