"""The autoscaler's periodic loop (runtime; the logic is in :mod:`.autoscaling`).

Every ``--autoscale-interval`` seconds, while this instance acts (:func:`.peering.still_active`),
for each placed ModelDeployment: query Prometheus (in a worker thread, fail-fast on an unreachable
server, bounded by a deadline), run :func:`.autoscaling.tick` on the reconciler's last plan
(it never plans itself) and hand the decision to the reconciler (:meth:`Reconciler.scaled`),
the one writer of status: the autoscaler writes nothing to the API server. Like the resync
timer it is the operator's own loop, not a kopf timer (timers force finalizers).

The policy's memory (``ScalerState``) lives in memory between ticks; after a restart it is
read from the ``wattserve.dev/scaler-state`` annotation, which the reconciler writes when the
replica count or the outage state changes and at most every ``STORE_EVERY_S`` otherwise.

Without a Prometheus URL the loop does nothing: the reconcile itself says
``Scaled=False/AutoscalerDisabled``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from wattserve.api import SpecError, parse_model_deployment
from wattserve.api.status import ObjectMeta
from wattserve.autoscale import Observation, PrometheusClient, ScalerState, collect, render
from wattserve.controller import autoscaling as glue
from wattserve.controller import metrics, peering
from wattserve.controller.cache import Key
from wattserve.controller.events import utcnow
from wattserve.controller.kubeapi import ApiError
from wattserve.controller.reconciler import Reconciler
from wattserve.reconcile import scaling

# The stored policy memory is refreshed at least this often while nothing else changes.
STORE_EVERY_S: Final = 60.0

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
        if err is not None and err.unreachable:
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
        self._stored: dict[Key, tuple[float, ScalerState]] = {}  # when and what was stored
        self._slots = asyncio.Semaphore(8)
        self.ticks = 0

    async def run_forever(self) -> None:
        await self.rec.synced.wait()
        config = self.rec.config
        while self.settings.enabled:
            await asyncio.sleep(self.settings.interval_s)
            if not await peering.still_active(self.rec, config):
                continue
            try:
                await self.tick_all()
            except Exception:
                logger.exception("autoscaler tick failed")

    async def tick_all(self) -> None:
        keys = list(self.rec.mds)
        for gone in set(self.states) - set(keys):
            self.states.pop(gone, None)
            self._stored.pop(gone, None)
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

    async def tick_one(self, key: Key) -> None:
        body = self.rec.mds.get(key)
        if body is None or ObjectMeta.from_body(body).deletion_timestamp:
            return
        if not self.settings.enabled or scaling.placed_pool(body) is None:
            return  # disabled: the reconcile says Scaled=False/AutoscalerDisabled itself
        obs, error = await self._observe(key)
        # The object, plan and count as the reconciler has them now, after the queries.
        body = self.rec.mds.get(key)
        p = self.rec.plans.get(key)
        if body is None or p is None or (pool := scaling.placed_pool(body)) is None:
            return  # deleted or unplaced while we were querying
        cand = scaling.candidate_for(p.candidates, p.chosen, pool)
        if cand is None:
            return
        try:
            md = parse_model_deployment(body)
        except SpecError:
            return
        now = self._clock()
        out = glue.tick(md, body, cand, self.states.get(key), obs, now, utcnow(),
                        self.settings.window_s, error, rendered=self.rec.rendered.get(key))
        self.states[key] = out.state
        store = None
        if self._store_due(key, out.state, now):
            store = scaling.state_annotation(out.state)
            self._stored[key] = (now, out.state)
        self.rec.scaled(key, scaling.handover(out), store)
        desired = out.decision.desired_replicas
        metrics.set_autoscaled(key[0], key[1], pool, desired, out.decision.predicted_p95_s)
        if out.desired_replicas is not None:
            logger.info("scaling %s/%s %d -> %d: %s", *key, out.current_replicas,
                        out.desired_replicas, out.decision.message)

    def _store_due(self, key: Key, state: ScalerState, now: float) -> bool:
        """Store the policy's memory when the count or the outage state changed, or when the
        stored copy is ``STORE_EVERY_S`` old (a restart loses at most that much learning)."""
        stored = self._stored.get(key)
        if stored is None:
            return True
        when, last = stored
        return (last.replicas != state.replicas or last.outage_since != state.outage_since
                or now - when >= STORE_EVERY_S)

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
