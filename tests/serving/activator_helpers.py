"""Test helpers for the activator: its aiohttp server in a thread, and a discovery stand-in.

``LoopbackDiscovery`` stands in for the Kubernetes API only (these tests have no cluster;
tests/integration/test_scale_to_zero_activator.py uses the real API server): the model's
"pods" are REAL serving processes on loopback, and ``activate()`` really starts one, so a
held request waits through a real cold start and is forwarded to a real replica.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from wattserve.devcluster.processes import PollTimeout, free_port, poll
from wattserve_activator.discovery import DiscoveryError, Target
from wattserve_activator.holding import Settings
from wattserve_activator.server import Activator, make_runner


class LoopbackDiscovery:
    def __init__(self, start_upstream: Callable[[], str] | None = None,
                 endpoints: list[str] | None = None) -> None:
        self.start_upstream = start_upstream
        self.upstreams: list[str] = list(endpoints or [])
        self.activations = 0
        self.api_down = False
        # Reported Ready although nothing listens (a pod that just died): fault injection.
        self.stale: list[str] = []
        self.resolved: list[tuple[str, str]] = []
        self._threads: list[threading.Thread] = []

    def _check(self) -> None:
        if self.api_down:
            raise DiscoveryError("cannot reach the API server (ClientConnectorError: "
                                 "injected fault)")

    async def resolve(self, namespace: str, service: str) -> Target:
        self._check()
        self.resolved.append((namespace, service))
        return Target(namespace, service, service, (("app.kubernetes.io/name", service),))

    async def ready_endpoints(self, target: Target) -> list[str]:
        self._check()
        ready = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            for url in list(self.upstreams):
                try:
                    async with s.get(url + "/health") as r:
                        if r.status == 200:
                            ready.append(url)
                except (aiohttp.ClientError, TimeoutError):
                    pass
        return ready + list(self.stale)

    async def activate(self, target: Target) -> None:
        self._check()
        self.activations += 1
        if self.start_upstream is not None:
            start = self.start_upstream
            thread = threading.Thread(target=lambda: self.upstreams.append(start()),
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    async def close(self) -> None:
        return None


class ActivatorServer:
    """The activator's aiohttp app on 127.0.0.1:<free port> in its own thread and loop."""

    def __init__(self, discovery: Any, **settings: Any) -> None:
        self.activator = Activator(discovery, Settings(**settings))
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ActivatorServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        for app, port in ((self.activator.app(), self.port),
                          (self.activator.admin_app(), self.admin_port)):
            runner = make_runner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._runners.append(runner)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the activator's loop (reading its state without races)."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in self._runners:
                await runner.cleanup()
        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(timeout=15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    try:
        return poll(predicate, timeout_s, "a condition", interval=0.02)
    except PollTimeout:
        return predicate()
