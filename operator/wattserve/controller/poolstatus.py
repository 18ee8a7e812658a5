"""Writes each ServingPool's status (decided by :mod:`wattserve.reconcile.poolstatus`).

Every ``pool_status_seconds`` (10 s; ``WATTSERVE_POOL_STATUS_SECONDS``), while this
operator acts (it holds the Lease, or kopf peering does not pause it), the pools whose
status would change get one merge patch each of ``servingpools/status``: never per
reconcile, so a wave of a thousand ModelDeployments costs a few pool writes, not one per
model. The figures come from the last fleet
assignment the reconciles computed; a fresh one is computed only when none is current (a
ModelDeployment deleted, a pool or node changed, and no reconcile since).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from wattserve import contract
from wattserve.controller import peering
from wattserve.controller.config import OperatorConfig
from wattserve.controller.events import utcnow
from wattserve.controller.kubeapi import ApiError
from wattserve.controller.reconciler import Reconciler
from wattserve.planning.capacity import pool_capacity
from wattserve.reconcile.poolstatus import PoolSeen, pool_events, pool_status, status_patch

SETTLE_PASSES: Final = 6  # a status is never more than this many intervals (+1) behind
logger = logging.getLogger("wattserve.operator")


def pool_reference(name: str, uid: str) -> dict[str, Any]:
    """A ServingPool as the involved object of an Event (cluster-scoped: the Event goes to
    the ``default`` namespace, as client-go's recorder does)."""
    return {"apiVersion": contract.API_VERSION, "kind": "ServingPool",
            "metadata": {"name": name, "uid": uid}}


async def write_pool_statuses(rec: Reconciler) -> int:
    """One pass: patch every pool whose status changed; returns how many were written."""
    snapshot = rec.fleet.last()
    if snapshot is None:
        if rec.mds:
            rec.fleet_assignment()
        snapshot = rec.fleet.last()
    assignments, capacities = snapshot if snapshot is not None else ([], {})
    now = utcnow()
    written = 0
    for name, seen in sorted(rec.pools_seen.items()):
        pool = rec.pools.get(name)
        capacity = capacities.get(name)
        if capacity is None and pool is not None:
            capacity = pool_capacity(pool, rec.fleet.nodes.values())
        desired = pool_status(seen, capacity, assignments, now)
        patch = status_patch(seen, desired)
        if patch is None:
            continue
        try:
            await rec.api.patch_pool_status(name, patch)
        except ApiError as err:
            if err.status != 404:  # 404: deleted meanwhile
                logger.warning("ServingPool %s: status not written: %s", name, err)
            continue
        written += 1
        for event in pool_events(seen, patch):
            rec.events.record(pool_reference(name, seen.uid), event)
        merged = {k: v for k, v in {**seen.status, **patch}.items() if v is not None}
        if rec.pools_seen.get(name) is seen:  # until the watch brings the server's copy
            rec.pools_seen[name] = PoolSeen(name, seen.generation, merged, seen.error,
                                            seen.uid)
    return written


async def pool_status_forever(rec: Reconciler, config: OperatorConfig) -> None:
    """A pass every ``pool_status_seconds``, once the number of ModelDeployments cached
    held for one interval (deferred at most ``SETTLE_PASSES`` intervals): after a start,
    kopf streams them in for a while, and a status counted from part of them would be
    written, then written again (a restart with everything in place must write nothing)."""
    await rec.synced.wait()
    before, deferred = -1, 0
    while True:
        await asyncio.sleep(config.pool_status_seconds)
        count = len(rec.mds)
        settling = count != before
        before = count
        if settling and deferred < SETTLE_PASSES:
            deferred += 1
            continue
        deferred = 0
        if await peering.still_active(rec, config):
            try:
                await write_pool_statuses(rec)
            except Exception:  # the next pass tries again
                logger.exception("writing ServingPool status failed")
