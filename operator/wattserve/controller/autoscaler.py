"""The autoscaler's periodic loop (runtime; the logic is in :mod:`.autoscaling`).

Every ``--autoscale-interval`` seconds, while peering says this instance is active, for each
placed ModelDeployment: query Prometheus (in a worker thread, fail-fast on an unreachable
server, bounded by a deadline), run :func:`.autoscaling.tick`, patch ``status`` once, post
the Events, and call :func:`.scaling.set_desired_replicas` when the count changes. Like the
resync timer it is the operator's own loop, not a kopf timer (timers force finalizers).

Without a Prometheus URL the loop only marks each placed ModelDeployment
``Scaled=False/AutoscalerDisabled`` (one patch each).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from wattserve.api import SpecError, parse_model_deployment
from wattserve.api.status import ObjectMeta
from wattserve.api.types import ServingPool
from wattserve.autoscale import Observation, PrometheusClient, ScalerState, collect, render
from wattserve.controller import autoscaling as glue
from wattserve.controller import metrics, peering
from wattserve.controller.cache import Key, slim
from wattserve.controller.events import post, utcnow
from wattserve.controller.kubeapi import ApiError
from wattserve.controller.reconciler import Reconciler
from wattserve.controller.scaling import set_desired_replicas
from wattserve.planning import Plan, plan
from wattserve.reconcile import scaling

logger = logging.getLogger(__name__)


class FailFast:
    """Wraps the client for one collection: after the server is found unreachable, the
    remaining queries of that collection answer None at once (no 9 x timeout)."""

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client
        self.down = False
        self.error = ""

    def query_value(self, promql: str) -> float | None:
        if self.down:
            return None
        value = self.client.query_value(promql)
        err = self.client.last_error
        if value is None and err is not None and not self.error:
            self.error = err.reason
        if err is not None and err.reason.startswith("unreachable"):
            self.down = True
        return value


class Autoscaler:
    def __init__(self, rec: Reconciler, settings: glue.AutoscaleSettings,
                 client_factory: Callable[[], PrometheusClient] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.rec = rec
        self.settings = settings
        self._client_factory = client_factory or (lambda: PrometheusClient(
            settings.prometheus_url, timeout_s=settings.query_timeout_s,
            max_staleness_s=max(60.0, 4 * settings.window_s)))
        self._clock = clock
        self.states: dict[Key, ScalerState] = {}
        self._plans: dict[Key, tuple[Any, list[ServingPool], Plan]] = {}
        self._slots = asyncio.Semaphore(8)
        self._posting: set[asyncio.Task[None]] = set()
        self.ticks = 0

    async def run_forever(self) -> None:
        await self.rec.synced.wait()
        config = self.rec.config
        while True:
            await asyncio.sleep(self.settings.interval_s)
            active = await peering.is_active(self.rec.api, config.peering_name,
                                             config.namespaces, config.identity,
                                             config.priority, config.standalone)
            if not active:
                continue
            try:
                await self.tick_all()
            except Exception:
                logger.exception("autoscaler tick failed")

    async def tick_all(self) -> None:
        keys = list(self.rec.mds)
        for gone in set(self.states) - set(keys):
            self.states.pop(gone, None)
            self._plans.pop(gone, None)
        await asyncio.gather(*(self._guarded(key) for key in keys))
        self.ticks += 1

    async def _guarded(self, key: Key) -> None:
        async with self._slots:
            try:
                await self.tick_one(key)
            except ApiError as err:
                if err.status != 404:
                    logger.warning("autoscaling %s/%s: %s", *key, err)
            except Exception:
                logger.exception("autoscaling %s/%s crashed", *key)

    def _plan(self, key: Key, body: dict[str, Any]) -> Plan | None:
        generation = ObjectMeta.from_body(body).generation
        pools = sorted(self.rec.pools.values(), key=lambda p: p.name)
        cached = self._plans.get(key)
        if cached is not None and cached[0] == generation and cached[1] == pools:
            return cached[2]
        try:
            md = parse_model_deployment(body)
        except SpecError:
            return None
        p = plan(md, pools)
        self._plans[key] = (generation, pools, p)
        return p

    async def tick_one(self, key: Key) -> None:
        body = self.rec.mds.get(key)
        if body is None or ObjectMeta.from_body(body).deletion_timestamp:
            return
        pool = scaling.placed_pool(body)
        if pool is None:
            return
        now_iso = utcnow()
        if not self.settings.enabled:
            conditions = scaling.conditions_patch(body, scaling.disabled_condition(), now_iso)
            if conditions is not None:
                await self._patch(key, {"conditions": conditions}, body)
            return
        obs, error = await self._observe(key)
        # The object as cached now, not before the queries: the status patch is computed
        # from it and guarded by its resourceVersion.
        body = self.rec.mds.get(key)
        if body is None or (pool := scaling.placed_pool(body)) is None:
            return  # deleted or unplaced while we were querying
        p = self._plan(key, body)
        if p is None:
            return
        cand = scaling.candidate_for(p.candidates, p.chosen, pool)
        if cand is None:
            return
        md = parse_model_deployment(body)
        now_iso = utcnow()
        out = glue.tick(md, body, cand, self.states.get(key), obs, self._clock(), now_iso,
                        self.settings.window_s, error)
        self.states[key] = out.state
        await self._patch(key, out.status_patch, body)
        for event in out.events:
            task = asyncio.create_task(post(self.rec.api, body, event,
                                            self.rec.config.identity))
            self._posting.add(task)
            task.add_done_callback(self._posting.discard)
        desired = out.decision.desired_replicas
        metrics.set_autoscaled(key[0], key[1], pool, desired, out.decision.predicted_p95_s)
        if out.desired_replicas is not None:
            logger.info("scaling %s/%s %d -> %d: %s", *key, out.current_replicas,
                        out.desired_replicas, out.decision.message)
            await set_desired_replicas(self.rec, key[0], key[1], out.desired_replicas,
                                       out.last_scale)

    async def _observe(self, key: Key) -> tuple[Observation | None, str]:
        queries = render(self.settings.templates, key[0], key[1])
        client = FailFast(self._client_factory())

        def run() -> Observation:
            return collect(client, queries)

        deadline = self.settings.query_timeout_s * 2 + 1.0
        try:
            obs = await asyncio.wait_for(asyncio.to_thread(run), timeout=deadline)
        except TimeoutError:
            return None, f"Prometheus queries took longer than {deadline:.0f}s"
        return obs, client.error

    async def _patch(self, key: Key, patch: dict[str, Any], body: dict[str, Any]) -> None:
        """``conditions`` is replaced as a whole list (merge patch), computed from the cached
        object: written with its resourceVersion, so a condition the reconcile wrote
        meanwhile is never reverted. On a conflict the autoscaler's own fields are written
        alone and the condition waits for the next tick."""
        rv = ObjectMeta.from_body(body).resource_version
        live: Any = None
        if rv and ("conditions" in patch or "current" in patch):
            try:
                live = await self.rec.api.patch_status(key[0], key[1], patch,
                                                       resource_version=str(rv))
            except ApiError as err:
                if err.status != 409:
                    raise
                patch = {k: v for k, v in patch.items() if k not in ("conditions", "current")}
                logger.debug("autoscaling %s/%s: status changed meanwhile; condition "
                             "deferred to the next tick", *key)
                if not patch:
                    return
        if live is None:
            live = await self.rec.api.patch_status(key[0], key[1], patch)
        # Refresh the cache without queueing a reconcile (nothing the reconcile owns changed).
        if isinstance(live, dict) and key in self.rec.mds:
            self.rec.mds[key] = slim(live)

