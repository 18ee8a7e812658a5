"""Kubernetes Events about ModelDeployments and ServingPools (core/v1 Events, created by
the operator).

Events are best effort and never on a reconcile's path (as client-go's recorder): the
reconcile records them, a few background senders post them. At most ``concurrency`` are in
flight, so during a create wave of a thousand ModelDeployments the Events take a small
share of the API server beside the reconciles' applies and status patches (32 in flight)
and catch up afterwards. Each Event is stamped when recorded, not when posted. A queue
beyond ``capacity`` drops its oldest (``wattserve_operator_events_dropped_total``); an
Event that cannot be posted is logged, never retried and never fails a reconcile.

An Event identical to one posted before (same object, type, reason and message) is not
posted again: its ``count`` and ``lastTimestamp`` are patched, as client-go's correlator
does, so a ModelDeployment flapping between two states shows one line per state with
"(x12 over 40m)" in ``kubectl describe`` instead of filling the namespace's Events. The
last ``capacity`` series are remembered; one whose Event has expired (404) starts anew;
without the right to patch Events (403: a role from an older chart) each is posted.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
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


SeriesKey = tuple[str, str, str, str, str, str]


def series_key(namespace: str, body: Mapping[str, Any]) -> SeriesKey:
    """What makes two Events the same one recurring: object, type, reason and message."""
    involved = body["involvedObject"]
    return (namespace, str(involved.get("uid") or ""), str(involved.get("kind") or ""),
            str(involved.get("name") or ""), f"{body['type']}/{body['reason']}",
            str(body["message"]))


@dataclass
class _Series:
    count: int = 1
    name: str | None = None  # the Event's name once posted
    sent: int = 0  # the count the posted Event shows


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
        self._queue: deque[tuple[str, dict[str, Any], SeriesKey]] = deque()
        self._capacity = max(1, capacity)
        self._senders: set[asyncio.Task[None]] = set()
        self._series: OrderedDict[SeriesKey, _Series] = OrderedDict()
        self.posted = 0
        self.repeated = 0  # of posted: counted on an earlier Event of the same series
        self._may_patch = True

    def __len__(self) -> int:
        return len(self._queue)

    def record(self, md: Mapping[str, Any], event: Event) -> None:
        namespace = str((md.get("metadata") or {}).get("namespace") or "default")
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            metrics.EVENTS_DROPPED.inc()
        body = event_body(md, event, self.instance, utcnow())
        key = series_key(namespace, body)
        series = self._series.pop(key, None)
        if series is None:
            series = _Series()
        else:
            series.count += 1
        self._series[key] = series  # most recent last
        while len(self._series) > self._capacity:
            self._series.popitem(last=False)
        self._queue.append((namespace, body, key))
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
            namespace, body, key = self._queue.popleft()
            metrics.EVENTS_QUEUED.set(len(self._queue))
            try:
                await self._post(namespace, body, key)
                self.posted += 1
            except ApiError as err:
                logger.warning("could not post event %s on %s: %s", body["reason"],
                               namespace, err)
            except Exception:  # a sender must not die with Events still queued
                logger.exception("posting event %s on %s crashed", body["reason"], namespace)

    async def _post(self, namespace: str, body: dict[str, Any], key: SeriesKey) -> None:
        """Patch the count of the series' Event if it has one, else create it."""
        series = self._series.get(key)
        if series is not None and series.name is not None and self._may_patch:
            self.repeated += 1
            if series.sent >= series.count:
                return  # a later record of the same series was already patched in
            try:
                await self.api.patch("v1", "Event", namespace, series.name,
                                     {"count": series.count,
                                      "lastTimestamp": body["lastTimestamp"]})
                series.sent = series.count
                return
            except ApiError as err:
                self.repeated -= 1
                if err.status == 403:  # a role from before patching: post each one
                    self._may_patch = False
                    logger.warning("events cannot be patched (%s): posting each one", err)
                elif err.status != 404:
                    raise
            series.count, series.name = 1, None  # expired: a new Event starts anew
        if series is not None:
            body = {**body, "count": series.count}
        answer = await self.api.create("v1", "Event", namespace, body)
        meta = answer.get("metadata") if isinstance(answer, Mapping) else None
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if series is not None and name:
            series.name, series.sent = str(name), series.count
