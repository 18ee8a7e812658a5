"""Assemble and run the operator: kopf settings, the Reconciler, metrics and health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Final

import kopf
from prometheus_client import start_http_server

from wattserve.controller import handlers, metrics, peering
from wattserve.controller.activation import watch_activator
from wattserve.controller.autoscaler import Autoscaler
from wattserve.controller.config import OperatorConfig
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.controller.leader import LeaderElector
from wattserve.controller.poolstatus import pool_status_forever
from wattserve.controller.reconciler import Reconciler, selector_of
from wattserve.controller.triggers import Trigger
from wattserve.render.children import CHILD_KINDS, POD, RAYSERVICE

logger = logging.getLogger(__name__)
EVENT_FLUSH_S: Final = 5.0  # on shutdown, how long queued Events may still be posted


class LeadershipLost(Exception):
    """This instance held the leader Lease and lost it: it must not write again."""


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """No diff-base: we have no change-detecting handlers, yet kopf would deep-copy every
    event's body to build one (~20% of the operator's CPU at 1,000 ModelDeployments)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    """Every kopf setting chosen on purpose; docs/operator.md explains each."""
    settings = kopf.OperatorSettings()
    # Only warnings from kopf's per-object logs become Events (no Event per handler run).
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "wattserve-operator"
    settings.posting.reporting_instance = config.identity[:128]
    # Peering: one active instance; auto-detected (standalone when the CRD is absent).
    settings.peering.name = config.peering_name
    settings.peering.priority = config.priority
    # With leader election the Lease decides who acts; kopf's peering would pause every
    # replica of the same priority, so it is off and every replica watches (warm caches).
    settings.peering.standalone = config.standalone or config.leader_lease is not None
    settings.peering.mandatory = False
    # Long-lived watches: the server ends each watch after 10 min (we re-watch from the last
    # resourceVersion); the client waits a bit longer so it never cuts a healthy stream.
    # Bookmarks (~1/min) keep the inactivity timer from firing on quiet resources.
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    # Initial LISTs in pages of 200: a thousand pods never sit in memory as one response.
    settings.watching.chunk_size = 200
    # Server-side filtering: only our children and serving pods are streamed.
    # Keyed by (group, version, plural): kopf reads a string key as one name, or as
    # "plural.group" when it has dots, so "apps/deployments" or
    # "discovery.k8s.io/endpointslices" matched no resource and every Deployment,
    # EndpointSlice, NetworkPolicy and RayService in reach was streamed unfiltered.
    for kind in (*CHILD_KINDS.values(), POD):
        settings.watching.label_selectors[kind.group, kind.version, kind.plural] = (
            selector_of(kind))
    # API errors in kopf's own calls (watch setup, peering, events): growing backoff,
    # honouring Retry-After on 429.
    settings.networking.error_backoffs = (1, 2, 5, 10, 20, 30, 60)
    settings.networking.request_timeout = 60
    settings.networking.enforce_retry_after = True
    # Diff-base storage: none is built (we have no change handlers; see NoDiffBase). With
    # event handlers only, kopf uses no finalizer and no progress storage: none is set.
    settings.persistence.diffbase_storage = NoDiffBase(
        prefix="wattserve.dev", key="last-handled-configuration")
    # All handlers are async: keep the thread pool for sync handlers tiny.
    settings.execution.max_workers = 2
    # kopf keeps one worker per object (holding its last event's full body) until it has been
    # idle this long; our handlers only copy into the caches, so let them go soon (a create
    # wave of 1,000 touches ~4,000 objects within a few seconds).
    settings.queueing.idle_timeout = 0.5
    return settings


def make_login() -> Any:
    """kubeconfig when KUBECONFIG is set, else in-cluster ServiceAccount, else ~/.kube/config."""
    settings = kopf.OperatorSettings()

    def login() -> kopf.ConnectionInfo | None:
        if os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(settings=settings)
        return (kopf.login_with_service_account(settings=settings)
                or kopf.login_with_kubeconfig(settings=settings))

    return login


def make_elector(rec: Reconciler, config: OperatorConfig,
                 stop: asyncio.Event, lost: list[str]) -> LeaderElector | None:
    """The Lease contender, or None without leader election. Leading: act, and queue every
    ModelDeployment (what a follower saw was only cached). Lost: stop at once."""
    if config.leader_lease is None:
        return None
    rec.active = False

    def on_lead() -> None:
        rec.active = True
        for key in list(rec.mds):
            rec.enqueue(key, Trigger.RESYNC)

    def on_lost(why: str) -> None:
        rec.active = False
        lost.append(why)
        stop.set()

    namespace, name = config.leader_lease
    return LeaderElector(rec.api, namespace, name, config.identity, config.lease,
                         on_lead, on_lost, predecessor=config.pod_identity_prefix)


async def serve(config: OperatorConfig, stop: asyncio.Event | None = None) -> None:
    login = make_login()
    api = KubeApi(login)
    rec = Reconciler(api, config)
    stop = stop if stop is not None else asyncio.Event()
    lost: list[str] = []
    elector = make_elector(rec, config, stop, lost)
    metrics.LEADER.set(0 if elector is not None else 1)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, rec)

    @kopf.on.login(registry=registry)
    def kube_login(**_: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = login()
        return info

    if config.metrics_port:
        start_http_server(config.metrics_port, addr="0.0.0.0")
    liveness = (f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port
                else None)
    tasks = [asyncio.create_task(rec.worker(), name=f"reconcile-worker-{i}")
             for i in range(config.workers)]
    tasks.append(asyncio.create_task(rec.initial_sync(), name="initial-sync"))
    tasks.append(asyncio.create_task(_resync(rec, config), name="resync"))
    tasks.append(asyncio.create_task(rec.relist_forever(), name="relist"))
    tasks.append(asyncio.create_task(pool_status_forever(rec, config), name="pool-status"))
    tasks.append(asyncio.create_task(Autoscaler(rec, config.autoscale).run_forever(),
                                     name="autoscaler"))
    if elector is not None:
        tasks.append(asyncio.create_task(elector.run(), name="leader-election"))
    if config.activator_service is not None:
        tasks.append(asyncio.create_task(watch_activator(rec, config.activator_service),
                                         name="activator-endpoints"))
    logger.info("autoscaler: %s", f"every {config.autoscale.interval_s:g}s from "
                f"{config.autoscale.prometheus_url} (window {config.autoscale.templates.window},"
                f" energy {config.autoscale.energy_source})" if config.autoscale.enabled
                else "off (no Prometheus URL)")
    async def wind_down() -> None:
        """Stop acting, hand the Lease over, then post the Events still queued (idempotent).

        The Lease goes first: nothing of ours writes state once the tasks are cancelled, and
        Events are only a record, so the next leader need not wait for them (on a busy API
        server their flush alone could outlast a short lease)."""
        await _cancel(tasks)
        if elector is not None:  # after the last state write: the next leader starts at once
            await elector.release()
        with contextlib.suppress(TimeoutError):  # Events still queued: a few seconds' grace
            await asyncio.wait_for(rec.events.flush(), EVENT_FLUSH_S)

    @kopf.on.cleanup(registry=registry, id="wind-down")
    async def wind_down_on_cleanup(**_: Any) -> None:
        # As kopf shuts down, before it waits (5 s) for tasks it did not start: a leader
        # that waited that long would hand over a Lease that had already run out.
        await wind_down()
        # kopf leaves its waiter on our stop flag pending after a signal, then waits those
        # 5 s for it: setting the flag ends it (we are stopping anyway).
        stop.set()

    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(config),
            clusterwide=config.clusterwide,
            namespaces=list(config.namespaces),
            standalone=config.standalone or None,
            identity=config.identity,  # type: ignore[arg-type]
            liveness_endpoint=liveness,
            stop_flag=stop,
        )
    finally:
        await wind_down()
        await api.close()
    if lost:
        assert config.leader_lease is not None
        raise LeadershipLost("lost the leader Lease {}/{}: {}".format(*config.leader_lease,
                                                                      lost[0]))


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the operator's own tasks and wait for them (idempotent; what a task raised
    was logged where it happened)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _resync(rec: Reconciler, config: OperatorConfig) -> None:
    """The periodic timer, gated by :func:`.peering.still_active`."""
    while True:
        await asyncio.sleep(config.resync_seconds)
        if await peering.still_active(rec, config):
            if RAYSERVICE.kind in rec.missing_kinds and await _rayservice_served(rec):
                rec.missing_kinds.discard(RAYSERVICE.kind)  # KubeRay was installed
            for key in list(rec.mds):
                rec.enqueue(key, Trigger.RESYNC)


async def _rayservice_served(rec: Reconciler) -> bool:
    try:
        found = await rec.api.get("/apis/ray.io/v1")
    except ApiError:
        return False
    return any(r.get("name") == "rayservices" for r in (found or {}).get("resources", []))
