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
                         ["namespace", "model_deployment"])
PREDICTED_P95 = Gauge(contract.OP_PREDICTED_P95_SECONDS,
                      "Predicted p95 latency of the chosen placement",
                      ["namespace", "model_deployment"])
API_ERRORS = Counter(contract.OP_API_ERRORS_TOTAL.removesuffix("_total"),
                     "Kubernetes API errors by verb and HTTP status", ["verb", "code"])

API_REQUESTS = Counter("wattserve_operator_api_requests",
                       "Kubernetes API requests sent by the reconciler (not kopf's watches)",
                       ["verb"])


def forget(namespace: str, name: str) -> None:
    """Drop the per-ModelDeployment series of a deleted ModelDeployment."""
    for gauge in (DESIRED_REPLICAS, PREDICTED_P95):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
