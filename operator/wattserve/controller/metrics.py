"""The operator's own Prometheus metrics (contract.OP_* names)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from wattserve import contract

# prometheus-client appends `_total` to counters: strip it from the contract names.
RECONCILE_TOTAL = Counter(contract.OP_RECONCILE_TOTAL.removesuffix("_total"),
                          "ModelDeployment reconciles by result", ["result"])
RECONCILE_SECONDS = Histogram(contract.OP_RECONCILE_SECONDS,
                              "Duration of one ModelDeployment reconcile", ["result"],
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5, 1.0, 2.5, 5.0, 10.0))
PLACEMENTS_TOTAL = Counter(contract.OP_PLACEMENTS_TOTAL.removesuffix("_total"),
                           "New placement decisions by pool and engine", ["pool", "engine"])
DESIRED_REPLICAS = Gauge(contract.OP_DESIRED_REPLICAS,
                         "Desired serving replicas per ModelDeployment",
                         ["namespace", "model_deployment", "pool"])
PREDICTED_P95 = Gauge(contract.OP_PREDICTED_P95_SECONDS,
                      "Predicted p95 latency: the autoscaler's at the desired replicas and "
                      "the observed load, else the placement plan's",
                      ["namespace", "model_deployment", "pool"])
API_ERRORS = Counter(contract.OP_API_ERRORS_TOTAL.removesuffix("_total"),
                     "Kubernetes API errors by verb and HTTP status", ["verb", "code"])

RECONCILE_TRIGGERS = Counter("wattserve_operator_reconcile_triggers",
                             "Reconciles by what queued them first (controller/triggers.py)",
                             ["trigger"])
OWN_ECHOES = Counter("wattserve_operator_own_echoes",
                     "Watch events that bring nothing new: the echo of the reconciler's own "
                     "write or an object as already cached (they queue nothing)", ["kind"])

LEADER = Gauge("wattserve_operator_leader",
               "1 while this instance acts: it holds the leader Lease, or runs without leader "
               "election and is not paused by kopf peering")
LEADER_TRANSITIONS = Counter("wattserve_operator_leader_acquisitions",
                             "Times this instance acquired the leader Lease")

FLEET_PASSES = Counter("wattserve_operator_fleet_passes",
                       "Fleet assignments by how they were made: full (every ModelDeployment "
                       "placed afresh), newcomers (placed after the others), reused",
                       ["kind"])
EVENTS_QUEUED = Gauge("wattserve_operator_events_queued",
                      "Kubernetes Events recorded and not yet posted (controller/events.py)")
EVENTS_DROPPED = Counter("wattserve_operator_events_dropped",
                         "Kubernetes Events dropped, oldest first, when the queue was full")

API_REQUESTS = Counter("wattserve_operator_api_requests",
                       "Kubernetes API requests sent by the reconciler (not kopf's watches)",
                       ["verb"])


# The pool label each ModelDeployment's series carry now, and the ModelDeployments whose
# predicted p95 comes from the autoscaler (the reconcile then leaves it alone).
_POOLS: dict[tuple[str, str], str] = {}
AUTOSCALED: set[tuple[str, str]] = set()


def _relabel(namespace: str, name: str, pool: str) -> None:
    old = _POOLS.get((namespace, name))
    if old is not None and old != pool:
        for gauge in (DESIRED_REPLICAS, PREDICTED_P95):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name, old)
    _POOLS[(namespace, name)] = pool


def set_planned(namespace: str, name: str, pool: str, desired: int | None,
                predicted_p95_s: float | None) -> None:
    """From the reconcile: desired replicas and the plan's predicted p95."""
    _relabel(namespace, name, pool)
    if desired is not None:
        DESIRED_REPLICAS.labels(namespace, name, pool).set(desired)
    if predicted_p95_s is not None and (namespace, name) not in AUTOSCALED:
        PREDICTED_P95.labels(namespace, name, pool).set(predicted_p95_s)


def set_autoscaled(namespace: str, name: str, pool: str, desired: int,
                   predicted_p95_s: float | None) -> None:
    """From the autoscaler: its desired replicas and predicted p95 at that count."""
    _relabel(namespace, name, pool)
    DESIRED_REPLICAS.labels(namespace, name, pool).set(desired)
    if predicted_p95_s is not None:
        AUTOSCALED.add((namespace, name))
        PREDICTED_P95.labels(namespace, name, pool).set(predicted_p95_s)


def forget(namespace: str, name: str) -> None:
    """Drop the per-ModelDeployment series of a deleted (or unplaced) ModelDeployment."""
    pool = _POOLS.pop((namespace, name), None)
    AUTOSCALED.discard((namespace, name))
    if pool is None:
        return
    for gauge in (DESIRED_REPLICAS, PREDICTED_P95):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name, pool)
