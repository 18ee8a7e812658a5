"""The seam where the autoscaler plugs in (the scaling policy lives in wattserve.autoscale).

The autoscaler's timer computes a replica count and calls :func:`set_desired_replicas`. It
writes ``status.replicas.desired`` (the source of truth the reconcile renders with) and the
decision to ``status.lastScale``, then queues the ModelDeployment: the reconcile clamps the
count to the spec's bounds and patches the Deployment / RayService. The reconcile never
resets a count the autoscaler set (see :mod:`wattserve.reconcile.replicas`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattserve.controller.reconciler import Reconciler


async def set_desired_replicas(rec: Reconciler, namespace: str, name: str, replicas: int,
                               last_scale: Mapping[str, Any] | None = None) -> None:
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, got {replicas}")
    status: dict[str, Any] = {"replicas": {"desired": replicas}}
    if last_scale is not None:
        status["lastScale"] = dict(last_scale)
    live = await rec.api.patch_status(namespace, name, status)
    if isinstance(live, dict):
        rec.md_upsert(live)
    rec.queue.add((namespace, name))
