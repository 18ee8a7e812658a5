"""The contract between the operator and the serving app: metric names, labels, env.

This is the ONLY module the serving image shares with the operator. It is pure data:
no imports beyond the standard library, so importing it never pulls in kopf or the
Kubernetes client.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------------------
# Labels every serving series carries (values come from the env below).
# ---------------------------------------------------------------------------
LABEL_MODEL: Final = "model"
LABEL_ENGINE: Final = "engine"
LABEL_POOL: Final = "pool"
LABEL_NAMESPACE: Final = "namespace"
LABEL_MODEL_DEPLOYMENT: Final = "model_deployment"
COMMON_LABELS: Final[tuple[str, ...]] = (
    LABEL_MODEL,
    LABEL_ENGINE,
    LABEL_POOL,
    LABEL_NAMESPACE,
    LABEL_MODEL_DEPLOYMENT,
)
LABEL_STATUS: Final = "status"  # HTTP status code class or code, on REQUESTS_TOTAL
LABEL_SOURCE: Final = "source"  # energy source: nvml | rapl | model

# ---------------------------------------------------------------------------
# Serving metrics (prometheus-client names; counters get `_total` appended by the
# client library, so the names below are the exported names).
# ---------------------------------------------------------------------------
# Latency of served requests only (status 200): errors and refusals are fast and would
# pull the p95 that drives scaling down; they are counted on REQUEST_ERRORS_TOTAL.
REQUEST_LATENCY_SECONDS: Final = "wattserve_request_duration_seconds"  # histogram
TIME_TO_FIRST_TOKEN_SECONDS: Final = "wattserve_time_to_first_token_seconds"  # histogram
INTER_TOKEN_LATENCY_SECONDS: Final = "wattserve_inter_token_latency_seconds"  # histogram
REQUESTS_TOTAL: Final = "wattserve_requests_total"  # counter, + status label
REQUEST_ERRORS_TOTAL: Final = "wattserve_request_errors_total"  # counter, + status label
PROMPT_TOKENS_TOTAL: Final = "wattserve_prompt_tokens_total"  # counter
GENERATION_TOKENS_TOTAL: Final = "wattserve_generation_tokens_total"  # counter
REQUESTS_IN_FLIGHT: Final = "wattserve_requests_in_flight"  # gauge
REQUESTS_QUEUED: Final = "wattserve_requests_queued"  # gauge
ENERGY_JOULES_TOTAL: Final = "wattserve_energy_joules_total"  # counter, + source label
POWER_WATTS: Final = "wattserve_power_watts"  # gauge, + source label
ENERGY_READ_ERRORS_TOTAL: Final = "wattserve_energy_read_errors_total"  # counter

# After SIGTERM a serving replica lets its running requests finish for this long (queued and
# new ones get a retryable 503 at once); the operator's pods give it this much grace after
# their preStop delay.
SERVING_DRAIN_SECONDS: Final = 20

# Buckets (seconds) suited to LLM latencies: milliseconds to minutes.
LATENCY_BUCKETS_SECONDS: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
    7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0,
)
INTER_TOKEN_BUCKETS_SECONDS: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
    0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
)

# ---------------------------------------------------------------------------
# Operator metrics (served by the operator process itself).
# ---------------------------------------------------------------------------
OP_RECONCILE_TOTAL: Final = "wattserve_operator_reconcile_total"  # counter, + result
OP_RECONCILE_SECONDS: Final = "wattserve_operator_reconcile_duration_seconds"  # histogram
OP_PLACEMENTS_TOTAL: Final = "wattserve_operator_placements_total"  # counter, pool/engine
OP_DESIRED_REPLICAS: Final = "wattserve_operator_desired_replicas"  # gauge
OP_PREDICTED_P95_SECONDS: Final = "wattserve_operator_predicted_p95_seconds"  # gauge
OP_API_ERRORS_TOTAL: Final = "wattserve_operator_api_errors_total"  # counter

# ---------------------------------------------------------------------------
# Environment the operator sets on serving containers.
# ---------------------------------------------------------------------------
ENV_MODEL_NAME: Final = "WATTSERVE_MODEL_NAME"  # served model id (OpenAI `model`)
ENV_MODEL_PATH: Final = "WATTSERVE_MODEL_PATH"  # local path or hf id
ENV_ENGINE: Final = "WATTSERVE_ENGINE"  # llamacpp | vllm
ENV_TASK: Final = "WATTSERVE_TASK"  # chat | completion (generate) | embedding (/v1/embeddings)
ENV_POOL: Final = "WATTSERVE_POOL"
ENV_NAMESPACE: Final = "WATTSERVE_NAMESPACE"
ENV_MODEL_DEPLOYMENT: Final = "WATTSERVE_MODEL_DEPLOYMENT"
ENV_THREADS: Final = "WATTSERVE_THREADS"  # CPU threads for llama.cpp
ENV_GPU_COUNT: Final = "WATTSERVE_GPU_COUNT"  # tensor parallel size for vLLM
ENV_CONTEXT_LENGTH: Final = "WATTSERVE_CONTEXT_LENGTH"
ENV_MAX_QUEUE: Final = "WATTSERVE_MAX_QUEUE"  # bounded queue length
# llama.cpp: requests served first-token-fairly at once (1: strictly in turn)
ENV_PARALLEL: Final = "WATTSERVE_PARALLEL"
ENV_NODE_IDLE_WATTS: Final = "WATTSERVE_NODE_IDLE_WATTS"
ENV_NODE_MAX_WATTS: Final = "WATTSERVE_NODE_MAX_WATTS"
ENV_NODE_CPUS: Final = "WATTSERVE_NODE_CPUS"
ENV_PORT: Final = "WATTSERVE_PORT"

# ---------------------------------------------------------------------------
# Kubernetes labels and annotations on children.
# ---------------------------------------------------------------------------
GROUP: Final = "wattserve.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
LABEL_K8S_MODEL_DEPLOYMENT: Final = "wattserve.dev/model-deployment"
LABEL_K8S_POOL: Final = "wattserve.dev/pool"
LABEL_K8S_ENGINE: Final = "wattserve.dev/engine"
LABEL_K8S_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
SERVING_PORT: Final = 8000
HEALTH_PATH: Final = "/health"
METRICS_PATH: Final = "/metrics"

# ---------------------------------------------------------------------------
# Scale to zero: the activator (holds requests while a model has no ready replica).
# ---------------------------------------------------------------------------
# The activator sets this annotation (an RFC 3339 UTC time) on the ModelDeployment to ask
# for a wake-up; the operator scales 0 -> 1 when it is newer than status.idle.scaledToZeroAt.
ANNOTATION_ACTIVATION: Final = "wattserve.dev/activation-requested"
# Explicit routing to the activator: "<namespace>/<model deployment>" (else the Host header).
HEADER_MODEL_DEPLOYMENT: Final = "X-Wattserve-Model-Deployment"
HEADER_ACTIVATED: Final = "X-Wattserve-Activated"  # on responses the activator forwarded
ACTIVATOR_PORT: Final = 8012
ACTIVATOR_HELD_REQUESTS: Final = "wattserve_activator_held_requests"  # gauge
ACTIVATOR_COLD_STARTS_TOTAL: Final = "wattserve_activator_cold_starts_total"  # counter
ACTIVATOR_HOLD_SECONDS: Final = "wattserve_activator_hold_seconds"  # histogram
ACTIVATOR_REJECTED_TOTAL: Final = "wattserve_activator_rejected_total"  # counter, + reason
