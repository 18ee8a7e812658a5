"""Where the activator is: its ready pod addresses, refreshed from its Service's EndpointSlices.

With ``WATTSERVE_ACTIVATOR_SERVICE=<namespace>/<name>`` (the Helm chart sets it when the
activator is enabled) the operator LISTs that Service's EndpointSlices every few seconds
(one label-filtered request) and keeps the ready addresses on the Reconciler. A change queues
every ModelDeployment that needs the activator (at zero, or woken and not Ready) so its
activator EndpointSlice follows (see :mod:`.zero`). Unset: scale to zero still works, but no
request reaches a model at zero (``Ready=False/ScaledToZero`` says so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from wattserve import contract
from wattserve.api.labels import is_dns_label
from wattserve.controller.kubeapi import ApiError
from wattserve.controller.triggers import Trigger
from wattserve.reconcile.idlestate import idle_memory
from wattserve.reconcile.zero import ActivatorEndpoints
from wattserve.render import SettingsError
from wattserve.render.children import ENDPOINTSLICE

logger = logging.getLogger(__name__)
ENV_ACTIVATOR_SERVICE: Final = "WATTSERVE_ACTIVATOR_SERVICE"


def activator_service_from_env(env: Mapping[str, str]) -> tuple[str, str] | None:
    raw = env.get(ENV_ACTIVATOR_SERVICE, "").strip()
    if not raw:
        return None
    ns, _, name = raw.partition("/")
    if not (is_dns_label(ns) and is_dns_label(name)):
        raise SettingsError(f"{ENV_ACTIVATOR_SERVICE}: must be <namespace>/<service name>, "
                            f"got {raw!r}")
    return ns, name


def endpoints_from_slices(slices: Iterable[Mapping[str, Any]]) -> ActivatorEndpoints | None:
    """Ready IPv4 addresses and the ``http`` port of the activator's slices (None: none)."""
    addresses: set[str] = set()
    port = contract.ACTIVATOR_PORT
    for eps in slices:
        if eps.get("addressType") != "IPv4":
            continue
        ready = {str(a) for endpoint in eps.get("endpoints") or ()
                 if (endpoint.get("conditions") or {}).get("ready") is not False
                 for a in endpoint.get("addresses") or ()}
        if not ready:
            continue
        if not addresses:  # every slice of one Service carries the same ports
            port = next((p["port"] for p in eps.get("ports") or ()
                         if p.get("name") == "http" and isinstance(p.get("port"), int)), port)
        addresses |= ready
    return ActivatorEndpoints(tuple(sorted(addresses)), port) if addresses else None


def _needs(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    return (status.get("replicas") or {}).get("desired") == 0 or bool(
        idle_memory(body).get("wakeRequestedAt"))


async def refresh_once(rec: Any, service: tuple[str, str]) -> None:
    ns, name = service
    slices = await rec.api.list_all(ENDPOINTSLICE.api_version, ENDPOINTSLICE.kind, ns,
                                    f"kubernetes.io/service-name={name}")
    found = endpoints_from_slices(slices)
    first = rec.activator_unknown
    rec.activator_unknown = False
    if found != rec.activator or first:
        logger.info("activator endpoints: %s", found)
        rec.activator = found
        for key, body in list(rec.mds.items()):
            if _needs(body):
                rec.enqueue(key, Trigger.ACTIVATION)


async def watch_activator(rec: Any, service: tuple[str, str], interval_s: float = 5.0) -> None:
    await rec.synced.wait()
    while True:
        if rec.active:
            try:
                await refresh_once(rec, service)
            except ApiError as err:
                logger.warning("listing the activator's EndpointSlices failed: %s", err)
        await asyncio.sleep(interval_s)
