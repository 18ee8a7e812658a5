"""Kubernetes Events about ModelDeployments and ServingPools (core/v1 Events, created by
the operator).

Events are best effort and never on a reconcile's path (as client-go's recorder): the
reconcile records them, a few background senders post them. At most ``concurrency`` are in
flight, so during a create wave of a thousand ModelDeployments the Events take a small
share of the API server beside the reconciles' applies and status patches (32 in flight)
and catch up afterwards. Each Event is stamped when recorded, not when posted. A queue
beyond ``capacity`` drops its oldest (``wattserve_operator_events_dropped_total``); an
Event that cannot be posted is logged, never retried and never fails a reconcile.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from wattserve import contract
from wattserve.controller import metrics
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.reconcile.decide import Event

logger = logging.getLogger(__name__)
COMPONENT: Final = "wattserve-operator"
CONCURRENCY: Final = 2
CAPACITY: Final = 4096


def event_body(md: Mapping[str, Any], event: Event, instance: str, now: str) -> dict[str, Any]:
    """The Event about ``md`` (a ModelDeployment, or a cluster-scoped ServingPool, whose
    Events go to the ``default`` namespace as client-go's recorder puts them)."""
    meta = md.get("metadata") or {}
    involved = {
        "apiVersion": md.get("apiVersion", contract.API_VERSION),
        "kind": md.get("kind", "ModelDeployment"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }
    if meta.get("namespace"):
        involved["namespace"] = meta["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.",
                     "namespace": meta.get("namespace") or "default"},
        "involvedObject": involved,
        "type": event.type,
        "reason": str(event.reason),
        "message": event.message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": "wattserve.dev/operator",
        "reportingInstance": instance[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """A bounded queue of Events and at most ``concurrency`` senders, started on demand
    (no lifecycle to manage: a sender exits when the queue is empty)."""

    def __init__(self, api: KubeApi, instance: str, concurrency: int = CONCURRENCY,
                 capacity: int = CAPACITY) -> None:
        self.api = api
        self.instance = instance
        self.concurrency = max(1, concurrency)
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._capacity = max(1, capacity)
        self._senders: set[asyncio.Task[None]] = set()
        self.posted = 0

    def __len__(self) -> int:
        return len(self._queue)

    def record(self, md: Mapping[str, Any], event: Event) -> None:
        namespace = str((md.get("metadata") or {}).get("namespace") or "default")
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            metrics.EVENTS_DROPPED.inc()
        self._queue.append((namespace, event_body(md, event, self.instance, utcnow())))
        metrics.EVENTS_QUEUED.set(len(self._queue))
        if len(self._senders) < self.concurrency:
            task = asyncio.create_task(self._send())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def flush(self) -> None:
        """Wait until every recorded Event has been posted (or has failed)."""
        while self._senders:
            await asyncio.gather(*list(self._senders), return_exceptions=True)

    async def _send(self) -> None:
        while self._queue:
            namespace, body = self._queue.popleft()
            metrics.EVENTS_QUEUED.set(len(self._queue))
            try:
                await self.api.create("v1", "Event", namespace, body)
                self.posted += 1
            except ApiError as err:
                logger.warning("could not post event %s on %s: %s", body["reason"],
                               namespace, err)
            except Exception:  # a sender must not die with Events still queued
                logger.exception("posting event %s on %s crashed", body["reason"], namespace)
