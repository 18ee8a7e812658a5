"""Keep the operator's own timers quiet while this instance does not act: kopf peering has
paused it, or (with leader election) another replica holds the Lease (:mod:`.leader`).

kopf pauses its watch streams when a peer with a higher (or the same) priority is alive, but
our resync timer runs outside kopf. Before each periodic resync, we read the same peering
object kopf uses (``ClusterKopfPeering``/``KopfPeering`` named ``--peering``) and apply kopf's
rule: any live peer other than us with priority >= ours means "paused". Missing peering CRD
or object (standalone) means active. One GET per resync period.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from wattserve.controller import metrics
from wattserve.controller.config import OperatorConfig
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.controller.reconciler import Reconciler

logger = logging.getLogger(__name__)


def peers_blocking(status: Mapping[str, Any], identity: str, priority: int,
                   now: datetime.datetime) -> list[str]:
    """Identities of live peers that pause us under kopf's rule."""
    out = []
    for peer_id, info in status.items():
        if peer_id == identity or not isinstance(info, Mapping):
            continue
        try:
            seen = datetime.datetime.fromisoformat(str(info.get("lastseen")))
        except ValueError:
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=datetime.UTC)
        alive = seen + datetime.timedelta(seconds=int(info.get("lifetime") or 60)) > now
        if alive and int(info.get("priority") or 0) >= priority:
            out.append(str(peer_id))
    return out


async def is_active(api: KubeApi, name: str, namespaces: tuple[str, ...], identity: str,
                    priority: int, standalone: bool) -> bool:
    if standalone:
        return True
    paths = ([f"/apis/kopf.dev/v1/namespaces/{ns}/kopfpeerings/{name}" for ns in namespaces]
             or [f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"])
    now = datetime.datetime.now(datetime.UTC)
    for path in paths:
        try:
            obj = await api.get(path)
        except ApiError as err:
            if err.status in (403, 404):
                continue
            logger.warning("peering check failed (%s): acting as active", err)
            continue
        blocking = peers_blocking((obj or {}).get("status") or {}, identity, priority, now)
        if blocking:
            logger.info("paused by peering: %s", ", ".join(blocking))
            return False
    return True


async def still_active(rec: Reconciler, config: OperatorConfig) -> bool:
    """Whether this instance acts now: it holds the Lease (kept current by the elector), or,
    without leader election, kopf peering does not pause it (:func:`is_active`)."""
    if config.leader_lease is not None:
        return rec.active
    rec.active = await is_active(rec.api, config.peering_name, config.namespaces,
                                 config.identity, config.priority, config.standalone)
    metrics.LEADER.set(1 if rec.active else 0)
    return rec.active
