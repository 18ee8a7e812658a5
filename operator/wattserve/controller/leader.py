"""Leader election: keep trying to hold the Lease; tell the operator when it leads or lost.

The decisions are :mod:`wattserve.reconcile.lease`'s; this module only reads the Lease,
writes what they say (with the resourceVersion read: 409 means another instance won) and
times the renewals. A leader that cannot renew within the renew deadline, or sees another
holder, has lost: ``on_lost`` runs once and the loop ends (the operator exits, and its
Deployment restarts it as a follower, as controller-runtime's managers do).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from wattserve.controller import metrics
from wattserve.controller.kubeapi import ApiError, KubeApi, resource_path
from wattserve.reconcile import lease
from wattserve.reconcile.lease import Action, LeaseRecord, LeaseTiming

logger = logging.getLogger(__name__)
LABELS = {"app.kubernetes.io/managed-by": "wattserve", "wattserve.dev/role": "leader-election"}


class LeaderElector:
    def __init__(self, api: KubeApi, namespace: str, name: str, identity: str,
                 timing: LeaseTiming, on_lead: Callable[[], None],
                 on_lost: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, predecessor: str = "") -> None:
        self.api = api
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timing = timing
        self._on_lead, self._on_lost = on_lead, on_lost
        self._clock = clock
        self.predecessor = predecessor  # identity prefix of this pod's earlier processes
        self.leading = False
        self.holder = ""  # the holder as last seen
        self._record: LeaseRecord | None = None  # as last read or written
        self._seen: tuple[str | None, float] = (None, clock())  # resourceVersion, first seen
        self._renewed = 0.0  # monotonic time of our last successful write

    @property
    def path(self) -> str:
        return resource_path(lease.LEASE_API_VERSION, "leases", self.namespace, self.name)

    async def run(self) -> None:
        """Until the lease is lost (or the task is cancelled)."""
        while True:
            lost_to = await self.try_once()
            if self.leading and lost_to is None and (
                    self._clock() - self._renewed > self.timing.renew_deadline_s):
                lost_to = f"no renewal for {self.timing.renew_deadline_s:g}s"
            if self.leading and lost_to is not None:
                self._step_down(lost_to)
                return
            await asyncio.sleep(self.timing.retry_s)

    async def try_once(self) -> str | None:
        """One read-decide-write round. Returns why a leader has lost, when it has."""
        try:
            body = await self.api.get(self.path)
        except ApiError as err:
            if err.status != 404:
                logger.warning("leader election: reading lease %s/%s failed: %s",
                               self.namespace, self.name, err)
                return None
            body = None
        current = LeaseRecord.from_body(body) if isinstance(body, dict) else None
        now = self._clock()
        version = current.resource_version if current is not None else None
        if version != self._seen[0]:
            self._seen = (version, now)
        step = lease.decide(current, self.identity, self.timing,
                            datetime.datetime.now(datetime.UTC), now - self._seen[1],
                            self.predecessor)
        if step.action is Action.FOLLOW:
            self.holder, self._record = step.holder, current
            return f"the lease is held by {step.holder}" if self.leading else None
        assert step.record is not None
        try:
            written = await self._write(step.action, step.record)
        except ApiError as err:
            if err.status != 409:  # 409: another instance wrote first; we read it next round
                logger.warning("leader election: %s of lease %s/%s failed: %s",
                               step.action, self.namespace, self.name, err)
            return None
        self._record = LeaseRecord.from_body(written) if isinstance(written, dict) else None
        self._renewed = self._clock()
        self.holder = self.identity
        if not self.leading:
            self.leading = True
            metrics.LEADER.set(1)
            metrics.LEADER_TRANSITIONS.inc()
            logger.info("leader election: %s lease %s/%s as %s", step.action,
                        self.namespace, self.name, self.identity)
            self._on_lead()
        return None

    async def _write(self, action: Action, record: LeaseRecord) -> Any:
        body = record.to_body(self.namespace, self.name, LABELS)
        if action is Action.CREATE:
            collection = resource_path(lease.LEASE_API_VERSION, "leases", self.namespace)
            return await self.api.request("POST", collection, body=body, verb="create")
        return await self.api.request("PUT", self.path, body=body, verb="update")

    def _step_down(self, why: str) -> None:
        self.leading = False
        metrics.LEADER.set(0)
        logger.error("leader election: lost lease %s/%s (%s)", self.namespace, self.name, why)
        self._on_lost(why)

    async def release(self) -> None:
        """On a clean shutdown: hand the lease over at once (best effort, one try)."""
        if not self.leading or self._record is None:
            return
        self.leading = False
        metrics.LEADER.set(0)
        record = lease.released(self._record, datetime.datetime.now(datetime.UTC))
        try:
            await self._write(Action.RENEW, record)
            logger.info("leader election: released lease %s/%s", self.namespace, self.name)
        except ApiError as err:
            logger.warning("leader election: releasing lease %s/%s failed (%s); a follower "
                           "takes it when it expires", self.namespace, self.name, err)
