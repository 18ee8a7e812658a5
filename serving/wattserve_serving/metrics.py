"""Serving metrics on a dedicated CollectorRegistry (one per app instance)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from wattserve import contract

# prometheus-client appends `_total` to counters itself; the contract names are the
# exported names, so strip the suffix when declaring.


def _counter_name(exported: str) -> str:
    return exported.removesuffix("_total")


class ServingMetrics:
    """All serving series, each labelled with the contract's COMMON_LABELS."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, labels: dict[str, str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.labels = {name: labels.get(name, "") for name in contract.COMMON_LABELS}
        common = list(contract.COMMON_LABELS)
        reg = self.registry
        self._latency = Histogram(
            contract.REQUEST_LATENCY_SECONDS,
            "End-to-end latency (seconds) of served requests (status 200).",
            common,
            buckets=contract.LATENCY_BUCKETS_SECONDS,
            registry=reg,
        )
        self._ttft = Histogram(
            contract.TIME_TO_FIRST_TOKEN_SECONDS,
            "Time from request arrival to the first generated token (seconds).",
            common,
            buckets=contract.LATENCY_BUCKETS_SECONDS,
            registry=reg,
        )
        self._itl = Histogram(
            contract.INTER_TOKEN_LATENCY_SECONDS,
            "Time between consecutive generated tokens (seconds).",
            common,
            buckets=contract.INTER_TOKEN_BUCKETS_SECONDS,
            registry=reg,
        )
        self._requests = Counter(
            _counter_name(contract.REQUESTS_TOTAL),
            "API requests by HTTP status code.",
            [*common, contract.LABEL_STATUS],
            registry=reg,
        )
        self._errors = Counter(
            _counter_name(contract.REQUEST_ERRORS_TOTAL),
            "API requests not served (any status but 200), by HTTP status code.",
            [*common, contract.LABEL_STATUS],
            registry=reg,
        )
        self._prompt_tokens = Counter(
            _counter_name(contract.PROMPT_TOKENS_TOTAL),
            "Prompt tokens processed.",
            common,
            registry=reg,
        )
        self._gen_tokens = Counter(
            _counter_name(contract.GENERATION_TOKENS_TOTAL),
            "Tokens generated.",
            common,
            registry=reg,
        )
        self._in_flight = Gauge(
            contract.REQUESTS_IN_FLIGHT,
            "Requests holding an engine slot (generating).",
            common,
            registry=reg,
        )
        self._queued = Gauge(
            contract.REQUESTS_QUEUED,
            "Requests admitted and waiting for an engine slot.",
            common,
            registry=reg,
        )
        self._energy = Counter(
            _counter_name(contract.ENERGY_JOULES_TOTAL),
            "Energy attributed to this serving process (joules), by measurement source.",
            [*common, contract.LABEL_SOURCE],
            registry=reg,
        )
        self._power = Gauge(
            contract.POWER_WATTS,
            "Power attributed to this serving process (watts), by measurement source.",
            [*common, contract.LABEL_SOURCE],
            registry=reg,
        )
        self._energy_errors = Counter(
            _counter_name(contract.ENERGY_READ_ERRORS_TOTAL),
            "Energy readings that failed and were skipped (NVML, RAPL).",
            common,
            registry=reg,
        )
        # Pre-create the label-only children so series exist before the first request.
        self.latency = self._latency.labels(**self.labels)
        self.ttft = self._ttft.labels(**self.labels)
        self.itl = self._itl.labels(**self.labels)
        self.prompt_tokens = self._prompt_tokens.labels(**self.labels)
        self.generation_tokens = self._gen_tokens.labels(**self.labels)
        self.in_flight = self._in_flight.labels(**self.labels)
        self.queued = self._queued.labels(**self.labels)
        self.energy_read_errors = self._energy_errors.labels(**self.labels)

    def request_done(self, status: int, seconds: float) -> None:
        """Every request counts by status; only served ones (200) time the latency."""
        self._requests.labels(**self.labels, status=str(status)).inc()
        if status == 200:
            self.latency.observe(seconds)
        else:
            self._errors.labels(**self.labels, status=str(status)).inc()

    def set_load(self, running: int, queued: int) -> None:
        self.in_flight.set(running)
        self.queued.set(queued)

    def add_energy(self, source: str, joules: float, watts: float) -> None:
        if joules > 0:
            self._energy.labels(**self.labels, source=source).inc(joules)
        else:
            self._energy.labels(**self.labels, source=source)  # make the series exist
        self._power.labels(**self.labels, source=source).set(watts)

    def render(self) -> bytes:
        return generate_latest(self.registry)
