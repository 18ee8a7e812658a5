"""Per-model holding: a bounded wait, exactly one wake-up per model, a deadline for everyone.

A *gate* per model (namespace, Service). The first request that finds no ready replica
starts the gate's single *episode* task: resolve the model, look for ready replicas, and
only if there are none, ask for ONE scale-up (``Discovery.activate``), then poll until a
replica is Ready. Every other request of that model just waits on the same task (at most
``queue_size`` of them; more are refused at once). Each waiter has its own deadline; a
failed episode (API server unreachable, nothing became ready in time) answers every waiter
with its reason at once. Nothing is dropped silently: every held request ends in a
forward, a 503 with a reason, or (the client went away) a counted cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from wattserve import contract
from wattserve_activator.discovery import Discovery, DiscoveryError, NotAModel, Target

logger = logging.getLogger(__name__)
T = TypeVar("T")
HOLD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
                120.0, 300.0)


@dataclass(frozen=True)
class Settings:
    queue_size: int = 100  # held requests per model; more get 503 at once
    deadline_s: float = 120.0  # a held request's longest wait for a ready replica
    activation_timeout_s: float = 600.0  # an episode's longest wait for a ready replica
    poll_s: float = 0.1  # how often a waking model's pods are checked
    warm_s: float = 1.0  # ready endpoints are reused this long without asking again
    retry_after_s: int = 5
    api_attempts: int = 3  # tries of the wake-up patch (and tolerated failed polls)


class Rejected(Exception):
    """Answer the client 503 (or ``status``) with this message and reason."""

    def __init__(self, reason: str, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


UNKNOWN_TTL_S = 5.0
UNKNOWN_CAPACITY = 4096


def not_found(gate: Gate) -> Rejected:
    return Rejected("model_not_found", f"{gate.namespace}/{gate.service} is not a wattserve "
                    "model's Service (no such Service, or no ModelDeployment owns it)", 404)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("namespace", "service")
        self.held = Gauge(contract.ACTIVATOR_HELD_REQUESTS, "Requests held waiting for a "
                          "ready replica", labels, registry=registry)
        self.cold_starts = Counter(contract.ACTIVATOR_COLD_STARTS_TOTAL.removesuffix("_total"),
                                   "Scale-ups from zero the activator asked for", labels,
                                   registry=registry)
        self.hold = Histogram(contract.ACTIVATOR_HOLD_SECONDS, "Time a request was held "
                              "before it was forwarded or refused", labels,
                              buckets=HOLD_BUCKETS, registry=registry)
        self.rejected = Counter(contract.ACTIVATOR_REJECTED_TOTAL.removesuffix("_total"),
                                "Requests answered 503 by the activator", (*labels, "reason"),
                                registry=registry)


@dataclass
class Gate:
    namespace: str
    service: str
    held: int = 0
    episode: asyncio.Task[list[str]] | None = None
    target: Target | None = None
    endpoints: list[str] = field(default_factory=list)
    endpoints_at: float = 0.0
    next: int = 0
    activations: int = 0
    unknown: bool = False  # resolved to no wattserve model: dropped with its series


class Holding:
    def __init__(self, discovery: Discovery, settings: Settings, metrics: Metrics) -> None:
        self.discovery = discovery
        self.settings = settings
        self.metrics = metrics
        self.gates: dict[tuple[str, str], Gate] = {}
        # Names that resolved to no model, until when they are answered 404 without asking
        # the API server again (bounded: a client cannot grow it without limit).
        self.unknown: dict[tuple[str, str], float] = {}

    def gate(self, namespace: str, service: str) -> Gate:
        key = (namespace, service)
        if key not in self.gates:
            self.gates[key] = Gate(namespace, service)
        return self.gates[key]

    def pick(self, gate: Gate) -> str:
        gate.next = (gate.next + 1) % len(gate.endpoints)
        return gate.endpoints[gate.next]

    def forget_endpoints(self, gate: Gate) -> None:
        gate.endpoints, gate.endpoints_at = [], 0.0

    async def wait_ready(self, gate: Gate, deadline: float) -> tuple[str, float]:
        """An endpoint to forward to and the time held; raises :class:`Rejected`."""
        now = time.monotonic()
        if gate.endpoints and now - gate.endpoints_at < self.settings.warm_s:
            return self.pick(gate), 0.0
        labels = (gate.namespace, gate.service)
        if self.unknown.get(labels, 0.0) > now:
            if gate.held == 0 and gate.episode is None:
                self.gates.pop(labels, None)
            raise not_found(gate)
        if gate.held >= self.settings.queue_size:
            self.metrics.rejected.labels(*labels, "queue_full").inc()
            raise Rejected("queue_full", f"{gate.held} requests already wait for model "
                           f"{gate.namespace}/{gate.service} to wake up (the activator's "
                           f"queue holds {self.settings.queue_size}); retry later")
        gate.held += 1
        self.metrics.held.labels(*labels).inc()
        started = now
        try:
            if gate.episode is None or gate.episode.done():
                gate.episode = asyncio.create_task(self._episode(gate))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            endpoints = await asyncio.wait_for(asyncio.shield(gate.episode), remaining)
            gate.endpoints, gate.endpoints_at = endpoints, time.monotonic()
            return self.pick(gate), time.monotonic() - started
        except TimeoutError:
            self.metrics.rejected.labels(*labels, "deadline").inc()
            raise Rejected("deadline", f"no replica of {gate.namespace}/{gate.service} became "
                           f"ready within this request's {deadline - started:.0f}s deadline "
                           "(cold start in progress); retry later") from None
        except NotAModel as err:
            gate.unknown = True
            self._remember_unknown(labels)
            logger.info("404 %s/%s: %s", *labels, err)
            raise not_found(gate) from None
        except DiscoveryError as err:
            self.metrics.rejected.labels(*labels, "api").inc()
            raise Rejected("api", f"cannot wake {gate.namespace}/{gate.service}: {err}") from None
        finally:
            gate.held -= 1
            if gate.unknown:  # no series and no gate kept for a name that is no model
                if gate.held == 0:
                    for metric in (self.metrics.held, self.metrics.hold):
                        with contextlib.suppress(KeyError):
                            metric.remove(*labels)
                    self.gates.pop(labels, None)
            else:
                self.metrics.held.labels(*labels).dec()
                self.metrics.hold.labels(*labels).observe(time.monotonic() - started)

    def _remember_unknown(self, key: tuple[str, str]) -> None:
        now = time.monotonic()
        if len(self.unknown) >= UNKNOWN_CAPACITY:
            for name, until in list(self.unknown.items()):
                if until <= now:
                    del self.unknown[name]
            while len(self.unknown) >= UNKNOWN_CAPACITY:
                del self.unknown[next(iter(self.unknown))]
        self.unknown[key] = now + UNKNOWN_TTL_S

    async def _episode(self, gate: Gate) -> list[str]:
        """Resolve, check, wake at most once, poll until ready (shared by all waiters)."""
        s = self.settings
        if gate.target is None:
            gate.target = await self._retry(lambda: self.discovery.resolve(gate.namespace,
                                                                           gate.service))
        target = gate.target
        endpoints = await self._retry(lambda: self.discovery.ready_endpoints(target))
        if endpoints:
            return endpoints
        await self._retry(lambda: self.discovery.activate(target))
        gate.activations += 1
        self.metrics.cold_starts.labels(gate.namespace, gate.service).inc()
        logger.info("woke %s/%s (ModelDeployment %s)", gate.namespace, gate.service,
                    target.model_deployment)
        woke = time.monotonic()
        give_up = woke + s.activation_timeout_s
        failures = 0
        while time.monotonic() < give_up:
            await asyncio.sleep(s.poll_s)
            try:
                endpoints = await self.discovery.ready_endpoints(target)
                failures = 0
            except DiscoveryError:
                failures += 1
                if failures >= s.api_attempts:
                    raise
                continue
            if endpoints:
                logger.info("%s/%s ready %.3fs after the wake-up: %s", gate.namespace,
                            gate.service, time.monotonic() - woke, ", ".join(endpoints))
                return endpoints
        raise DiscoveryError(f"no replica became ready within {s.activation_timeout_s:.0f}s "
                             "of the wake-up")

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """A few quick tries (API blips); the last error goes to every waiter. A name that
        is no model is not tried again."""
        for attempt in range(self.settings.api_attempts):
            try:
                return await call()
            except NotAModel:
                raise
            except DiscoveryError:
                if attempt + 1 >= self.settings.api_attempts:
                    raise
                await asyncio.sleep(0.1 * 2 ** attempt)
        raise AssertionError("unreachable")
