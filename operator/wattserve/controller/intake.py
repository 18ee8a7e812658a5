"""The reconciler's caches and their intake from kopf's watches (runtime).

The kopf handlers call the ``*_upsert`` / ``*_deleted`` methods: each updates a cache and
queues exactly the ModelDeployments the change concerns. A watch event that only echoes the
reconciler's own write (its status patch, its scaler-state annotation, a child it applied)
queues nothing: one reconcile per change. :class:`~wattserve.controller.reconciler.Reconciler`
builds on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

from wattserve.api import SpecError, parse_serving_pool
from wattserve.api.conditions import Reason
from wattserve.api.status import ObjectMeta
from wattserve.api.types import ServingPool
from wattserve.controller import metrics
from wattserve.controller.cache import (
    ChildCache,
    Key,
    PodCache,
    key_of,
    owner_of,
    resource_version,
    slim,
)
from wattserve.controller.config import OperatorConfig
from wattserve.controller.fleetstate import FleetState
from wattserve.controller.triggers import Trigger
from wattserve.controller.workqueue import WorkQueue
from wattserve.planning import Plan
from wattserve.planning.fleet import Rebalance
from wattserve.reconcile.decide import ScalingUpdate
from wattserve.reconcile.idlestate import ANNOTATION_IDLE_STATE
from wattserve.reconcile.index import PlacementIndex
from wattserve.reconcile.poolstatus import PoolSeen
from wattserve.reconcile.scaling import ANNOTATION_SCALER_STATE
from wattserve.render.meta import label_value

logger = logging.getLogger("wattserve.controller.reconciler")


def _generation(obj: Mapping[str, Any]) -> int:
    return ObjectMeta.from_body(obj).generation


# What the reconcile reads of a Deployment's status (health, rollout); the rest (timestamps,
# Progressing's lastUpdateTime, ...) changes without changing any decision.
DEPLOYMENT_STATUS: Final = ("observedGeneration", "replicas", "readyReplicas",
                            "availableReplicas", "updatedReplicas", "unavailableReplicas")


def _placement_facts(child: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = child.get("metadata") or {}
    return meta.get("labels"), child.get("spec")


def _reconcile_facts(child: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a reconcile reads of a child: a watch event that changes none of it (the echo of
    our own apply, a Deployment status change of timestamps only) queues nothing."""
    meta = child.get("metadata") or {}
    status = child.get("status") or {}
    if child.get("kind") == "Deployment":
        stalled = [c.get("message") for c in status.get("conditions") or ()
                   if c.get("reason") == "ProgressDeadlineExceeded"]
        status = {k: status.get(k) for k in DEPLOYMENT_STATUS} | {"stalled": stalled}
    return (meta.get("labels"), meta.get("annotations"), meta.get("generation"),
            meta.get("ownerReferences"), meta.get("deletionTimestamp"), child.get("spec"),
            status)


def _same_but_status(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether only ``status`` (or the resourceVersion, managedFields, ...) differs."""
    was, now = ObjectMeta.from_body(old), ObjectMeta.from_body(new)
    return (was.generation, dict(was.labels), dict(was.annotations), old.get("spec")) == (
        now.generation, dict(now.labels), dict(now.annotations), new.get("spec"))


OURS_KEPT: Final = 4  # resourceVersions of our own writes remembered per ModelDeployment


class Intake:
    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.mds: dict[Key, dict[str, Any]] = {}
        self.pools: dict[str, ServingPool] = {}
        self.pools_seen: dict[str, PoolSeen] = {}  # every pool, invalid ones too (status)
        self.children = ChildCache()
        self.pods = PodCache()
        self.index = PlacementIndex()
        self.fleet = FleetState(Rebalance(config.rebalance_min_gain,
                                          config.rebalance_dwell_seconds))
        self.queue: WorkQueue[Key] = WorkQueue()
        self.apply_errors: dict[Key, str] = {}
        self.missing_kinds: set[str] = set()
        # Set once pools, children and pods are loaded: no reconcile runs before.
        self.synced = asyncio.Event()
        self._tombstones: set[tuple[str, str, str]] = set()  # deleted during the sync
        self.plans: dict[Key, Plan] = {}  # the last plan per ModelDeployment (autoscaler)
        self.rendered: dict[Key, int] = {}  # the replica count last rendered
        self.scaling: dict[Key, ScalingUpdate] = {}  # autoscaler decisions not written yet
        self.state_to_store: dict[Key, dict[str, str]] = {}  # annotations not written yet
        self._writing: dict[Key, Mapping[str, Any]] = {}  # status expected after our patch
        self._ours: dict[Key, list[str]] = {}  # resourceVersions our last writes produced
        self.triggers: dict[Key, Trigger] = {}  # what first queued each key since its last run

    def enqueue(self, key: Key, trigger: Trigger) -> None:
        """Queue a reconcile of ``key``, remembering what first asked for it."""
        self.triggers.setdefault(key, trigger)
        self.queue.add(key)

    def trigger_of(self, key: Key) -> Trigger:
        """What queued the reconcile of ``key`` that starts now (a timer when nothing did)."""
        return self.triggers.pop(key, Trigger.TIMER)

    def wrote(self, key: Key, live: Mapping[str, Any]) -> None:
        """Remember the resourceVersion one of our writes produced: its watch event is our
        echo, even when it arrives after the answer to a later write of ours."""
        rv = resource_version(live)
        if rv:
            ours = self._ours.setdefault(key, [])
            ours.append(rv)
            del ours[:-OURS_KEPT]

    def md_answered(self, key: Key, live: Any, before: str | None) -> None:
        """Take the answer to a write of ours to a ModelDeployment (status or annotations):
        its resourceVersion is ours; it is cached unless the watch delivered the object
        while the write was in flight (``before``: the resourceVersion cached as it began),
        which is the write's echo or a change newer than the answer."""
        if not isinstance(live, dict) or key not in self.mds:
            return
        self.wrote(key, live)
        if resource_version(self.mds[key]) == before:
            self.mds[key] = slim(live)

    def md_upsert(self, obj: Mapping[str, Any]) -> None:
        key = key_of(obj)
        old = self.mds.get(key)
        ours, rv = self._ours.get(key, []), resource_version(obj)
        if old is not None and rv in ours and resource_version(old) in ours and (
                ours.index(str(resource_version(old))) > ours.index(str(rv))):
            # the late echo of an earlier write of ours: the cache holds a later one already
            metrics.OWN_ECHOES.labels("ModelDeployment").inc()
            return
        self.mds[key] = slim(obj)
        if old is None:
            self.fleet.added(key)  # placed after the others when it comes last in order
        elif _generation(old) != _generation(obj) or (
                ObjectMeta.from_body(old).deletion_timestamp
                != ObjectMeta.from_body(obj).deletion_timestamp):
            self.fleet.invalidate()
        if old is None:
            self.enqueue(key, Trigger.CREATED)
        elif resource_version(old) == rv or rv in ours or self._own_echo(key, old, obj):
            # cached already, or ours
            metrics.OWN_ECHOES.labels("ModelDeployment").inc()
        else:
            self.enqueue(key, Trigger.STATUS_BY_OTHERS if _same_but_status(old, obj)
                         else Trigger.CHANGED)

    def _own_echo(self, key: Key, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        """Whether ``new`` differs from ``old`` only by what this reconciler wrote itself:
        its status patch (in flight or answered) or its memory annotations. Such a
        watch event needs no reconcile (it would only compute the same status again)."""
        was, now = ObjectMeta.from_body(old), ObjectMeta.from_body(new)
        mine = (ANNOTATION_SCALER_STATE, ANNOTATION_IDLE_STATE)
        if (was.generation, was.deletion_timestamp, dict(was.labels)) != (
                now.generation, now.deletion_timestamp, dict(now.labels)):
            return False
        if ({k: v for k, v in was.annotations.items() if k not in mine}
                != {k: v for k, v in now.annotations.items() if k not in mine}):
            return False
        status = new.get("status") or {}
        return status == (old.get("status") or {}) or status == self._writing.get(key)

    def md_deleted(self, obj: Mapping[str, Any]) -> None:
        key = key_of(obj)
        self.mds.pop(key, None)
        entry = self.index.get(key)
        self.index.forget(key)
        self.fleet.forget(key)
        if entry is not None and entry.placed is not None:
            self._replan(entry.placed)  # its room is free: spilled and waiting models may move
        self.queue.forget(key)
        self.apply_errors.pop(key, None)
        for table in (self.plans, self.rendered, self.scaling, self.state_to_store,
                      self.triggers, self._ours):
            table.pop(key, None)
        metrics.forget(*key)

    def pool_upsert(self, obj: Mapping[str, Any]) -> None:
        meta = ObjectMeta.from_body(obj)
        name = meta.name
        error: str | None = None
        reason = Reason.INVALID_SPEC
        try:
            pool: ServingPool | None = parse_serving_pool(dict(obj))
        except SpecError as err:
            logger.warning("ServingPool %s is invalid and is ignored: %s", name, err)
            pool, error = None, str(err)
        if pool is not None and (problem := self.config.render.accelerator_problem(pool)):
            logger.warning("ServingPool %s is ignored: %s", name, problem)
            pool, error, reason = None, problem, Reason.UNSUPPORTED_ACCELERATOR
        status = obj.get("status")
        self.pools_seen[name] = PoolSeen(name, meta.generation,
                                         status if isinstance(status, Mapping) else {}, error,
                                         meta.uid, reason)
        before = self.pools.get(name)
        if pool is None:
            self.pools.pop(name, None)
        else:
            self.pools[name] = pool
        if before != pool:
            self.fleet.pools_changed()
            self._replan(name)

    def pool_deleted(self, obj: Mapping[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        self._tombstone("ServingPool", "", name)
        self.pools_seen.pop(name, None)
        if self.pools.pop(name, None) is not None:
            self.fleet.pools_changed()
            self._replan(name)

    def _replan(self, pool: str) -> None:
        affected = self.index.affected(pool)
        if affected:
            logger.info("ServingPool %s changed: re-planning %d ModelDeployments", pool,
                        len(affected))
        for key in affected:
            self.enqueue(key, Trigger.POOL)

    def node_upsert(self, obj: Mapping[str, Any]) -> None:
        for pool in self.fleet.node_upsert(obj, self.pools.values()):
            self._replan(pool)

    def node_deleted(self, obj: Mapping[str, Any]) -> None:
        for pool in self.fleet.node_deleted(obj, self.pools.values()):
            self._replan(pool)

    def child_upsert(self, obj: Mapping[str, Any]) -> None:
        ns, name = key_of(obj)
        old = self.children.get(str(obj.get("kind") or ""), ns, name)
        owner = owner_of(obj)
        # The fleet reads the pool label and spec of the children ModelDeployments own (not,
        # e.g., the EndpointSlices of our Services, which carry their labels); a new child
        # created as assigned (a create wave's applies) changes nothing it booked.
        if old is None:
            stale = owner is not None and not self.fleet.as_assigned(owner, obj, self.pools)
        else:
            stale = _placement_facts(old) != _placement_facts(obj)
        if stale:
            self.fleet.invalidate()
        owner = self.children.upsert(obj) or owner
        if owner is None or owner not in self.mds:
            return
        if old is None or _reconcile_facts(old) != _reconcile_facts(obj):
            self.enqueue(owner, Trigger.CHILD)
        else:  # the echo of our apply (as its answer cached), or a change nothing reads
            metrics.OWN_ECHOES.labels(str(obj.get("kind") or "")).inc()

    def child_deleted(self, obj: Mapping[str, Any]) -> None:
        ns, name = key_of(obj)
        self._tombstone(str(obj.get("kind")), ns, name)
        self.fleet.invalidate()
        owner = self.children.remove(str(obj.get("kind")), ns, name)
        if owner is not None and owner in self.mds:
            self.enqueue(owner, Trigger.CHILD)

    def pod_upsert(self, obj: Mapping[str, Any]) -> None:
        self._pod_owner(self.pods.upsert(obj))

    def pod_deleted(self, obj: Mapping[str, Any]) -> None:
        self._tombstone("Pod", *key_of(obj))
        self._pod_owner(self.pods.remove(obj))

    def _tombstone(self, kind: str, namespace: str, name: str) -> None:
        if not self.synced.is_set():
            self._tombstones.add((kind, namespace, name))

    def _pod_owner(self, group: Key | None) -> None:
        if group is None:
            return
        if group in self.mds:
            self.enqueue(group, Trigger.POD)
            return
        ns, label = group
        for key in self.mds:  # long names: the label value is a hash of the name
            if key[0] == ns and label_value(key[1]) == label:
                self.enqueue(key, Trigger.POD)
