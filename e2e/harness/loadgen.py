"""A bounded load generator for the OpenAI-compatible API (loopback, or addresses the caller
names: e.g. the ClusterIP of a Service of this machine's dev cluster).

Open-loop arrivals at a fixed rate for a fixed duration, with a cap on requests in
flight and on the total count, so it always stops by itself.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Makes SmolLM2 write until max_tokens: each request costs a predictable amount of decode.
LONG_PROMPT = "Count from one to one hundred in words, separated by commas."


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_load(base_url: str, model: str, rate: float, duration_s: float, *,
                   max_tokens: int = 16, max_in_flight: int = 32,
                   max_requests: int = 10_000, prompt: str = "Say hello in one sentence.",
                   timeout_s: float = 60.0,
                   allowed_hosts: frozenset[str] = frozenset(),
                   stop: asyncio.Event | None = None,
                   keepalive: bool = True) -> LoadResult:
    """Send for ``duration_s`` (or until ``stop`` is set), then wait for the answers.

    ``keepalive=False``: a new connection per request, like many independent clients (a
    Service's ClusterIP balances connections, not requests: kept-alive connections stay on
    the pods that existed when they were opened)."""
    host = urlparse(base_url).hostname or ""
    if host not in LOOPBACK and host not in allowed_hosts:
        raise ValueError(f"load tests only target loopback or allowed_hosts, not {host!r}")
    result = LoadResult()
    gate = asyncio.Semaphore(max_in_flight)
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0.0,
            "messages": [{"role": "user", "content": prompt}]}

    async def one(client: httpx.AsyncClient) -> None:
        async with gate:
            start = time.monotonic()
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError:
                result.errors[0] = result.errors.get(0, 0) + 1
                return
            if response.status_code == 200:
                result.ok += 1
                result.latencies_s.append(time.monotonic() - start)
            else:
                code = response.status_code
                result.errors[code] = result.errors.get(code, 0) + 1

    tasks: list[asyncio.Task[None]] = []
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20 if keepalive else 0)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        start = time.monotonic()
        interval = 1.0 / rate if rate > 0 else duration_s
        next_at = start
        while (time.monotonic() - start < duration_s and result.sent < max_requests
               and not (stop is not None and stop.is_set())):
            tasks.append(asyncio.create_task(one(client)))
            result.sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        for task in tasks:
            task.cancel()
    return result
