"""Bounded load through a dev-cluster Service's ClusterIP (or loopback): open loop at a fixed
rate with per-window figures, or closed loop (users back to back). Every request opens a new
connection, so kube-proxy spreads them over the Service's pods as it would for many clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
from wattserve.devcluster.commands import SERVICE_CIDR

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
MODEL_NAME = "smollm2-135m-instruct"
# Makes SmolLM2 write until max_tokens: each request costs a predictable amount of decode.
LONG_PROMPT = "Count from one to one hundred in words, separated by commas."


def _allowed(url: str) -> bool:
    """Load only goes to loopback or to this dev cluster's Service addresses."""
    try:
        address = ipaddress.ip_address(urlparse(url).hostname or "")
    except ValueError:
        return False
    return address in LOOPBACK or address in ipaddress.ip_network(SERVICE_CIDR)


@dataclass
class Window:
    """Requests that finished in one time window."""

    start_s: float
    ok: int = 0
    errors: int = 0
    tokens: int = 0
    latencies_s: list[float] = field(default_factory=list)

    def p95(self) -> float:
        return percentile(self.latencies_s, 0.95)


@dataclass
class Load:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    latencies_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    windows: list[Window] = field(default_factory=list)

    def p95(self) -> float:
        return percentile(self.latencies_s, 0.95)

    def p50(self) -> float:
        return percentile(self.latencies_s, 0.5)

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.duration_s if self.duration_s else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_load(url: str, rate: float, duration_s: float, *, max_tokens: int = 32,
                   max_in_flight: int = 24, timeout_s: float = 60.0, window_s: float = 10.0,
                   on_window: Callable[[Window], None] | None = None,
                   samples: list[tuple[float, float]] | None = None) -> Load:
    """Open-loop arrivals at ``rate``/s for ``duration_s`` (bounded in flight and in time);
    latency = request sent -> whole answer, counted in the window the request ends in;
    ``samples`` gets (time.monotonic() when sent, latency) of every answered request."""
    if not _allowed(url):
        raise ValueError(f"load only targets loopback or the dev cluster's Services: {url}")
    result = Load()
    gate = asyncio.Semaphore(max_in_flight)
    body = {"model": MODEL_NAME, "max_tokens": max_tokens, "temperature": 0.0,
            "messages": [{"role": "user", "content": LONG_PROMPT}]}
    began = time.monotonic()
    result.windows.append(Window(0.0))

    def window(now: float) -> Window:
        while now - began >= result.windows[-1].start_s + window_s:
            done = result.windows[-1]
            if on_window is not None:
                on_window(done)
            result.windows.append(Window(done.start_s + window_s))
        return result.windows[-1]

    def fail(kind: str) -> None:
        result.errors[kind] = result.errors.get(kind, 0) + 1
        window(time.monotonic()).errors += 1

    async def one(client: httpx.AsyncClient) -> None:
        async with gate:
            start = time.monotonic()
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                fail(type(exc).__name__)
                return
            if response.status_code != 200:
                fail(str(response.status_code))
                return
            end = time.monotonic()
            tokens = int(response.json().get("usage", {}).get("completion_tokens", 0))
            result.ok += 1
            result.tokens += tokens
            result.latencies_s.append(end - start)
            if samples is not None:
                samples.append((start, end - start))
            current = window(end)
            current.ok += 1
            current.tokens += tokens
            current.latencies_s.append(end - start)

    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        tasks: list[asyncio.Task[None]] = []
        while time.monotonic() - began < duration_s:
            tasks.append(asyncio.ensure_future(one(client)))
            result.sent += 1
            window(time.monotonic())
            await asyncio.sleep(1.0 / rate)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=timeout_s + 10)
    result.duration_s = time.monotonic() - began
    if on_window is not None:
        on_window(result.windows[-1])
    return result


async def run_closed(url: str, clients: int, duration_s: float, *,
                     max_tokens: int = 32, timeout_s: float = 60.0) -> Load:
    """``clients`` users each sending the next request when the last one ends: the most the
    Service delivers (saturation throughput), one new connection per request."""
    if not _allowed(url):
        raise ValueError(f"load only targets loopback or the dev cluster's Services: {url}")
    result = Load()
    body = {"model": MODEL_NAME, "max_tokens": max_tokens, "temperature": 0.0,
            "messages": [{"role": "user", "content": LONG_PROMPT}]}
    began = time.monotonic()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)

    async def user(client: httpx.AsyncClient) -> None:
        while time.monotonic() - began < duration_s:
            start = time.monotonic()
            result.sent += 1
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
                continue
            if response.status_code != 200:
                code = str(response.status_code)
                result.errors[code] = result.errors.get(code, 0) + 1
                await asyncio.sleep(0.2)
                continue
            result.ok += 1
            result.tokens += int(response.json().get("usage", {}).get("completion_tokens", 0))
            result.latencies_s.append(time.monotonic() - start)

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        await asyncio.wait_for(asyncio.gather(*(user(client) for _ in range(clients))),
                               timeout=duration_s + timeout_s + 10)
    result.duration_s = time.monotonic() - began
    return result
