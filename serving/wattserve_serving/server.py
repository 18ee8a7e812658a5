"""uvicorn settings that bound what one client can hold: connections, slow headers, idle.

uvicorn has no timeout for a request head that arrives a byte at a time (slowloris), so
the HTTP protocol here closes a connection whose head is not complete `header_timeout_s`
after the connection opened or after its previous response. Slow bodies are bounded by
the app (`request_body.BODY_TIMEOUT_S`), connections by `limit_concurrency` (503 beyond).

The kubelet's probes and Prometheus's scrapes are not counted against that limit: with 512
idle client connections open, `/health` answered 503, readiness took the pod out of its
Service and liveness restarted it, losing every generation in flight.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from wattserve import contract

ENV_HEADER_TIMEOUT = "WATTSERVE_HEADER_TIMEOUT_S"
HEADER_TIMEOUT_S = 10.0
LIMIT_CONCURRENCY = 512  # open connections + running requests; 503 beyond
KEEP_ALIVE_S = 5
# Probes and scrapes always answer, whatever the connection count.
UNLIMITED_PATHS = frozenset({contract.HEALTH_PATH, contract.METRICS_PATH})


class HeadTimeoutH11Protocol(H11Protocol):
    """h11 protocol that drops connections which never finish sending a request head."""

    header_timeout_s = HEADER_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None
    _head_for: object = None
    _limit: int | None = None

    # uvicorn reads ``limit_concurrency`` once per request, right after it has built the
    # request's scope: a probe or a scrape is let through whatever the connection count.
    @property
    def limit_concurrency(self) -> int | None:
        scope = getattr(self, "scope", None)
        if isinstance(scope, dict) and scope.get("path") in UNLIMITED_PATHS:
            return None
        return self._limit

    @limit_concurrency.setter
    def limit_concurrency(self, value: int | None) -> None:
        self._limit = value

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        self._arm_head_timer()  # before: a pipelined request may start a new cycle in super
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        self._head_for = self.cycle  # a new request replaces the cycle
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.cycle is self._head_for and not self.transport.is_closing():
            self.transport.close()


def header_timeout_s(env: dict[str, str] | None = None) -> float:
    raw = (os.environ if env is None else env).get(ENV_HEADER_TIMEOUT, "").strip()
    try:
        value = float(raw) if raw else HEADER_TIMEOUT_S
    except ValueError:
        return HEADER_TIMEOUT_S
    return value if 0 < value < 3600 else HEADER_TIMEOUT_S


def protocol(timeout_s: float) -> type[H11Protocol]:
    return type("HeadTimeoutH11", (HeadTimeoutH11Protocol,), {"header_timeout_s": timeout_s})


def uvicorn_config(app: Any, host: str, port: int, **kwargs: Any) -> uvicorn.Config:
    """The Config every uvicorn run of the serving app uses (CLI and tests)."""
    settings: dict[str, Any] = {
        "http": protocol(header_timeout_s()),
        "limit_concurrency": LIMIT_CONCURRENCY,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "access_log": False,
    }
    settings.update(kwargs)
    return uvicorn.Config(app, host=host, port=port, **settings)


class DrainingServer(uvicorn.Server):
    """uvicorn's server that tells the app when shutdown begins (SIGTERM), so queued
    requests get a retryable 503 at once while the running ones finish within
    ``timeout_graceful_shutdown`` (contract.SERVING_DRAIN_SECONDS)."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            self._on_exit()
        finally:
            super().handle_exit(sig, frame)
