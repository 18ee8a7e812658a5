"""The runtime: caches fed by kopf's watches, a work queue, and the reconcile itself.

``reconcile(key)`` reads the ModelDeployment, the pools, its children and pods from the
caches, calls the pure :func:`decide`, then applies/deletes children (server-side apply),
posts Events, and patches ``status`` once. Nothing is written when nothing differs, so an
idle cluster costs no API requests beyond kopf's watches.

The reconciler is the one writer of ``status``. The autoscaler hands its decisions over with
:meth:`Reconciler.scaled` (in-process: no status patch of its own, no round trip through
the API server) and reads the last plan per ModelDeployment from :attr:`Reconciler.plans`
and the count rendered from :attr:`Reconciler.rendered` (it never re-plans). The policy's
memory is stored on purpose in annotations, in one metadata patch: ``wattserve.dev/scaler-state``
when the autoscaler asks, ``wattserve.dev/idle-state`` (scale to zero) when ``decide`` says
it changed (:mod:`wattserve.reconcile.idlestate`); neither is read back from ``status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from wattserve import contract
from wattserve.api.conditions import Reason
from wattserve.api.patching import apply_merge_patch
from wattserve.api.status import ObjectMeta
from wattserve.controller import metrics
from wattserve.controller.cache import ChildCache, Key, key_of, resource_version
from wattserve.controller.childwrites import apply_child
from wattserve.controller.config import OperatorConfig
from wattserve.controller.events import EventRecorder, utcnow
from wattserve.controller.intake import Intake
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.controller.triggers import Trigger
from wattserve.planning import Plan
from wattserve.planning.fleet import Assignment, Member, fleet_plan
from wattserve.reconcile.decide import Observed, Outcome, ScalingUpdate, decide
from wattserve.reconcile.zero import ActivatorEndpoints
from wattserve.render.children import (
    CHILD_KINDS,
    DEPLOYMENT,
    ENDPOINTSLICE,
    NETWORKPOLICY,
    POD,
    RAYSERVICE,
    SERVICE,
    ChildKind,
)
from wattserve.render.meta import label_value

# What the initial sync lists: the children, and the serving pods.
LISTED: Final = (DEPLOYMENT, SERVICE, RAYSERVICE, NETWORKPOLICY, POD, ENDPOINTSLICE)

logger = logging.getLogger(__name__)
CHILD_SELECTOR = "app.kubernetes.io/managed-by=wattserve"


def selector_of(kind: ChildKind) -> str:
    """The label selector our objects of ``kind`` are watched and listed with."""
    return f"{CHILD_SELECTOR},{kind.selector}" if kind.selector else CHILD_SELECTOR
STORE_RETRY_S: Final = 5.0  # a failed write of the memory annotations is tried again after


def _generation(obj: Mapping[str, Any]) -> int:
    return ObjectMeta.from_body(obj).generation


@dataclass(frozen=True)
class FleetChoice:
    plan: Plan | None = None  # the fleet's plan for this ModelDeployment (None: plan alone)
    full: bool = False
    spilled_from: str | None = None
    recheck_after_s: float | None = None


class Reconciler(Intake):
    """The caches (:class:`Intake`), the workers and the reconcile that writes."""

    def __init__(self, api: KubeApi, config: OperatorConfig) -> None:
        super().__init__(config)
        self.api = api
        self.events = EventRecorder(api, config.identity)
        self.activator: ActivatorEndpoints | None = None  # scale to zero (see .activation)
        self.activator_unknown = config.activator_service is not None  # until first listed
        self.active = True  # False while a peer with a higher priority runs (peering gate)
        self.reconciles = 0

    # ---- the autoscaler's hand-over (in-process) ----------------------------------------
    def scaled(self, key: Key, update: ScalingUpdate,
               store: Mapping[str, str] | None = None) -> None:
        """The autoscaler's decision for ``key``: written (with ``store``, the annotations
        that keep the policy's memory) by the next reconcile, which is queued now."""
        if key not in self.mds:
            return
        pending = self.scaling.get(key)
        self.scaling[key] = update if pending is None else pending.then(update)
        if store:
            self.state_to_store[key] = dict(store)
        self.enqueue(key, Trigger.AUTOSCALER)

    # ---- the reconcile ------------------------------------------------------------------
    def observe(self, key: Key, scaling: ScalingUpdate | None = None) -> Observed | None:
        body = self.mds.get(key)
        if body is None:
            return None
        return Observed(
            body=body,
            pools=sorted(self.pools.values(), key=lambda p: p.name),
            children=self.children.of(key),
            pods=self.pods.of((key[0], label_value(key[1]))),
            missing_kinds=frozenset(self.missing_kinds),
            apply_error=self.apply_errors.get(key),
            activator=self.activator,
            activator_unknown=self.activator_unknown,
            scaling=scaling,
            autoscaler_disabled=not self.config.autoscale.enabled,
        )

    async def reconcile(self, key: Key) -> str:
        """One level-triggered pass for one ModelDeployment; returns the result label."""
        scaling = self.scaling.pop(key, None)
        store = self.state_to_store.pop(key, None)
        try:
            return await self._reconcile(key, scaling, store)
        except BaseException:
            if key in self.mds:  # not written: kept (under any newer one) for the retry
                if scaling is not None:
                    newer = self.scaling.get(key)
                    self.scaling[key] = scaling if newer is None else scaling.then(newer)
                if store is not None:
                    self.state_to_store.setdefault(key, store)
            raise

    async def _reconcile(self, key: Key, scaling: ScalingUpdate | None,
                         store: Mapping[str, str] | None) -> str:
        obs = self.observe(key, scaling)
        if obs is None:
            return "gone"
        if ObjectMeta.from_body(obs.body).deletion_timestamp:
            return "deleting"  # ownerReferences garbage-collect the children
        choice = self.fleet_choice(key)
        outcome = decide(replace(obs, pools_full=choice.full, spilled_from=choice.spilled_from),
                         self.config.render, utcnow(), choice.plan)
        self.index.record(key, outcome.placed_pool, outcome.pinned_pool, choice.spilled_from,
                          outcome.plan.chosen.pool if outcome.plan and outcome.plan.chosen
                          else None)
        if choice.recheck_after_s is not None:  # the dwell time runs out: look again then
            self.queue.add_after(key, choice.recheck_after_s + 1.0)
        applied, deleted = len(outcome.apply), len(outcome.delete)
        error = await self._carry_out(key, outcome)
        if error is not None or outcome.apply or outcome.delete or (
                self.apply_errors.get(key) != obs.apply_error):
            refreshed = self.observe(key, scaling)
            if refreshed is not None:  # status from what exists now, not before the writes
                same_spec = _generation(refreshed.body) == _generation(obs.body) and (
                    refreshed.pools == obs.pools)
                if not same_spec:
                    choice = self.fleet_choice(key)
                outcome = decide(
                    replace(refreshed, pools_full=choice.full,
                            spilled_from=choice.spilled_from),
                    self.config.render, utcnow(), outcome.plan if same_spec else choice.plan)
        await self._write_status(key, obs.body, outcome)
        if outcome.plan is not None:
            self.plans[key] = outcome.plan
        if outcome.desired_replicas is not None:
            self.rendered[key] = outcome.desired_replicas
        annotations = {**(store or {}), **outcome.annotations}
        if annotations:  # the policy's memory (scaler-state, idle-state): one patch, on change
            await self._store(key, annotations)
        self._record_metrics(key, outcome)
        logger.debug("reconciled %s/%s: %s, %d applied, %d deleted, status %s", *key,
                     outcome.result, applied, deleted,
                     "patched" if outcome.status_patch else "unchanged")
        if error is not None:
            raise error
        return outcome.result

    def fleet_assignment(self, key: Key | None = None) -> Mapping[Key, tuple[Member, Assignment]]:
        """The fleet assignment; when it is new, every ModelDeployment (but ``key``) whose
        pool it changes is queued."""
        pools = sorted(self.pools.values(), key=lambda p: p.name)
        fleet, changed = self.fleet.assignment(self.mds, pools, self.children.of)
        for other in changed:  # whose assignment is new (all when computed afresh)
            entry = self.index.get(other)
            got = fleet[other][1]
            pool = got.candidate.pool if got.candidate is not None else None
            if other != key and entry is not None and entry.planned != pool:
                self.enqueue(other, Trigger.FLEET)
        return fleet

    def fleet_choice(self, key: Key) -> FleetChoice:
        """This ModelDeployment's share of the fleet assignment (see fleet_assignment)."""
        found = self.fleet_assignment(key).get(key)
        if found is None:
            return FleetChoice()
        member, got = found
        return FleetChoice(fleet_plan(member, got), got.full, got.spilled_from,
                           got.recheck_after_s)

    async def _carry_out(self, key: Key, outcome: Outcome) -> ApiError | None:
        ns = key[0]
        first: ApiError | None = None
        for api_version, kind, name in outcome.delete:
            try:
                await self.api.delete(api_version, kind, ns, name)
                self.children.remove(kind, ns, name)
            except ApiError as err:
                first = first or err
        cached = [self.children.get(obj["kind"], ns, obj["metadata"]["name"])
                  for obj in outcome.apply]
        before = [resource_version(c) for c in cached]  # what the cache held as writes began
        results = await asyncio.gather(*(apply_child(self.api, self.children, self.mds, key, obj)
                                         for obj in outcome.apply),
                                        return_exceptions=True)
        for obj, live, was in zip(outcome.apply, results, before, strict=True):
            if isinstance(live, ApiError):
                if live.status == 404 and obj["kind"] == RAYSERVICE.kind:
                    self.missing_kinds.add(RAYSERVICE.kind)  # reported as RayServiceCRDMissing
                    continue
                first = first or live
                logger.warning("applying %s %s/%s failed: %s", obj["kind"], ns,
                               obj["metadata"]["name"], live)
            elif isinstance(live, BaseException):
                raise live
            elif isinstance(live, dict):
                self.children.answered(live, was)
        if first is None:
            self.apply_errors.pop(key, None)
        else:  # reported by the next decide(): Degraded=ApplyFailed + one Warning Event
            self.apply_errors[key] = f"applying children failed: {first}"
        return first

    async def _write_status(self, key: Key, body: Mapping[str, Any], outcome: Outcome) -> None:
        for event in outcome.events:  # posted in the background: never delays the status
            self.events.record(body, event)
            if event.reason == Reason.PLACED and outcome.plan and outcome.plan.chosen:
                chosen = outcome.plan.chosen
                metrics.PLACEMENTS_TOTAL.labels(chosen.pool, chosen.engine).inc()
        if outcome.status_patch is None:
            return
        # Its watch event may come before the answer: recognised as our own (no reconcile).
        cached = self.mds.get(key) or body
        before = resource_version(self.mds.get(key))
        self._writing[key] = apply_merge_patch(cached.get("status") or {}, outcome.status_patch)
        try:
            live = await self.api.patch_status(key[0], key[1], outcome.status_patch)
        except ApiError as err:
            if err.status == 404:
                return  # deleted meanwhile
            raise
        finally:
            self._writing.pop(key, None)
        self.md_answered(key, live, before)

    async def _store(self, key: Key, annotations: Mapping[str, str]) -> None:
        """Write the annotations that keep the policy's memory. A failure is logged and
        tried again by a later reconcile (a newer value of the same annotation wins)."""
        before = resource_version(self.mds.get(key))
        try:
            live = await self.api.patch(contract.API_VERSION, "ModelDeployment", key[0],
                                        key[1], {"metadata": {"annotations": dict(annotations)}})
        except ApiError as err:
            if err.status != 404:
                logger.warning("storing the memory annotations of %s/%s failed: %s", *key, err)
                if key in self.mds:
                    self.state_to_store[key] = {**annotations,
                                                **self.state_to_store.get(key, {})}
                    self.queue.add_after(key, STORE_RETRY_S)
            return
        self.md_answered(key, live, before)

    def _record_metrics(self, key: Key, outcome: Outcome) -> None:
        chosen = outcome.plan.chosen if outcome.plan else None
        if chosen is not None:
            metrics.set_planned(*key, chosen.pool, outcome.desired_replicas,
                                chosen.predicted_p95_ms / 1000)
        else:
            metrics.forget(*key)

    # ---- workers and timers ---------------------------------------------------------------
    async def worker(self) -> None:
        await self.synced.wait()
        while True:
            key = await self.queue.get()
            metrics.RECONCILE_TRIGGERS.labels(self.trigger_of(key)).inc()
            started = time.perf_counter()
            result = "error"
            try:
                if not self.active:
                    result = "paused"
                    continue
                result = await self.reconcile(key)
                self.queue.succeeded(key)
            except ApiError as err:
                if err.permanent:  # retrying the same request cannot help
                    self.queue.succeeded(key)  # no backoff carried to the next change
                    logger.warning("reconcile %s/%s failed (%s); not retried: the next change "
                                   "or resync reconciles it again", *key, err)
                    continue
                delay = self.queue.retry(key, err.retry_after)
                logger.warning("reconcile %s/%s failed (%s); retrying in %.1fs", *key, err,
                               delay)
            except Exception:
                delay = self.queue.retry(key)
                logger.exception("reconcile %s/%s crashed; retrying in %.1fs", *key, delay)
            finally:
                self.queue.done(key)
                self.reconciles += 1
                elapsed = time.perf_counter() - started
                metrics.RECONCILE_TOTAL.labels(result).inc()
                metrics.RECONCILE_SECONDS.labels(result).observe(elapsed)

    async def initial_sync(self) -> None:
        """Load pools, children and serving pods with one LIST each before any reconcile.

        kopf's watch events may arrive meanwhile; they are newer, so a listed object only
        fills a gap (not cached yet, not deleted meanwhile). Retries until it succeeds.
        """
        delay = 1.0
        while True:
            try:
                await self._load_everything()
                break
            except ApiError as err:
                logger.warning("initial LIST failed (%s); retrying in %.0fs", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.synced.set()
        self._tombstones.clear()
        logger.info("caches loaded: %d pools, %d children; reconciling", len(self.pools),
                    len(self.children))

    async def _load_everything(self) -> None:
        for pool in await self.api.list_all(contract.API_VERSION, "ServingPool", None):
            name = str(pool["metadata"]["name"])
            if name not in self.pools and ("ServingPool", "", name) not in self._tombstones:
                self.pool_upsert(pool)
        try:
            for node in await self.api.list_all("v1", "Node", None):
                self.node_upsert(node)
        except ApiError as err:
            if err.status not in (403, 404):
                raise
            logger.warning("cannot list Nodes (%s): pool capacity comes from maxNodes", err)
        namespaces: list[str | None] = list(self.config.namespaces) or [None]
        for api_version, kind, selector in ((k.api_version, k.kind, selector_of(k))
                                            for k in LISTED):
            for ns in namespaces:
                try:
                    async for page in self.api.list_pages(api_version, kind, ns, selector):
                        self._merge_listed(api_version, kind, page)
                except ApiError as err:
                    if err.status in (403, 404) and kind == RAYSERVICE.kind:
                        self.missing_kinds.add(kind)
                        continue
                    raise

    def _merge_listed(self, api_version: str, kind: str, items: list[dict[str, Any]]) -> None:
        for item in items:
            obj = {**item, "apiVersion": api_version, "kind": kind}
            ns, name = key_of(obj)
            if (kind, ns, name) in self._tombstones:
                continue
            if kind == "Pod":
                if not self.pods.has(obj):
                    self.pods.upsert(obj)
            elif not self.children.has(kind, ns, name):
                self.children.upsert(obj)

    async def relist_children(self) -> None:
        """Replace the child cache with a fresh LIST (a watch gap can hide a deletion)."""
        self.children.relisting()
        try:
            fresh = await self._list_children()
        except BaseException:
            self.children.relisting(False)
            raise
        stale = self.children.owners() | fresh.owners()
        self.children = self.children.renewed(fresh)
        for key in stale & set(self.mds):
            self.enqueue(key, Trigger.RESYNC)

    async def _list_children(self) -> ChildCache:
        namespaces: list[str | None] = list(self.config.namespaces) or [None]
        fresh = ChildCache()
        for child_kind in CHILD_KINDS.values():
            api_version, kind = child_kind.api_version, child_kind.kind
            if kind in self.missing_kinds:
                continue
            for ns in namespaces:
                try:
                    items = await self.api.list_all(api_version, kind, ns,
                                                    selector_of(child_kind))
                except ApiError as err:
                    if err.status == 404:
                        continue
                    raise
                for item in items:
                    fresh.upsert({**item, "apiVersion": api_version, "kind": kind})
        return fresh

    async def relist_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.full_resync_seconds)
            if not self.active:
                continue
            try:
                await self.relist_children()
            except ApiError as err:
                logger.warning("child resync failed: %s", err)
