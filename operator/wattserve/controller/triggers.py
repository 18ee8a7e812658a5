"""What queues a ModelDeployment's reconcile: the label of
``wattserve_operator_reconcile_triggers_total`` (docs/operator.md)."""

from __future__ import annotations

from enum import StrEnum


class Trigger(StrEnum):
    """What queued a reconcile (the ``trigger`` label of the reconcile-trigger metric). An
    echo of the reconciler's own write is none of them: it queues nothing (counted apart)."""

    CREATED = "created"  # the ModelDeployment was seen for the first time
    CHANGED = "changed"  # its spec or metadata changed
    STATUS_BY_OTHERS = "status-by-others"  # its status changed and the change is not ours
    CHILD = "child"  # a child it owns changed in what the reconcile reads, or went away
    POD = "pod"  # one of its serving pods changed
    POOL = "pool-or-node"  # a pool or a node of a pool it is (or could be) placed on
    FLEET = "fleet"  # the fleet assignment moves it to another pool
    AUTOSCALER = "autoscaler"  # the autoscaler handed over a decision
    ACTIVATION = "activation"  # the scale-to-zero activator's endpoints changed
    RESYNC = "resync"  # the periodic resync or a re-list of the children
    TIMER = "timer"  # a retry after a failure or the end of a dwell time
