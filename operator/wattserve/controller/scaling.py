"""The seam where a scaler plugs in (the scaling policy lives in wattserve.autoscale).

:func:`set_desired_replicas` hands a replica count (and ``lastScale``) to the reconciler
in-process; the next reconcile, queued now, writes ``status.replicas.desired`` and
``lastScale`` in its one status patch, clamps the count to the spec's bounds and patches the
Deployment / RayService. The reconcile never resets a count set this way (see
:mod:`wattserve.reconcile.replicas`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattserve.controller.reconciler import Reconciler
from wattserve.reconcile.decide import ScalingUpdate


async def set_desired_replicas(rec: Reconciler, namespace: str, name: str, replicas: int,
                               last_scale: Mapping[str, Any] | None = None) -> None:
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, got {replicas}")
    status: dict[str, Any] = {} if last_scale is None else {"lastScale": dict(last_scale)}
    rec.scaled((namespace, name), ScalingUpdate(status=status, desired_replicas=replicas))
