"""Activator overhead: the same request straight to a replica vs through the activator.

When a model has ready replicas the activator is OFF the request path (the operator deletes
the EndpointSlice that routes to it). It is on the path only while a model wakes, and for
the requests kube-proxy still sends it until the slice is gone: for those it forwards to a
ready replica without holding. This measures what that forward adds, side by side in one
run: interleaved rounds (rotating order) of

* ``direct``: a keep-alive HTTP client -> the upstream;
* ``activator``: the same client -> the activator (warm gate) -> the upstream.

The upstream is a minimal aiohttp server answering a small OpenAI-shaped JSON (so the figure
is the proxy's own cost, not the model's), plus a streaming variant (16 SSE chunks).

    python benchmarks/activator.py                 # 3000 requests per target
    python benchmarks/activator.py --requests 500 --json

Bounded: ``--budget-s`` (default 120 s) ends the rounds early.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from wattserve.devcluster.processes import free_port
from wattserve_activator.discovery import Target
from wattserve_activator.holding import Settings
from wattserve_activator.server import Activator, make_runner

BODY = {"id": "cmpl-1", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello " * 20}}]}


class Fixed:
    """Discovery that knows the one ready upstream (the warm path needs nothing else)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def resolve(self, namespace: str, service: str) -> Target:
        return Target(namespace, service, service, (("app", service),))

    async def ready_endpoints(self, target: Target) -> list[str]:
        return [self.url]

    async def activate(self, target: Target) -> None:
        raise AssertionError("a warm model is never woken")

    async def close(self) -> None:
        return None


async def upstream_app() -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        if request.query.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(16):
                await resp.write(f"data: {{\"i\": {i}}}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        return web.json_response(BODY)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def serve_in_thread(make: Any, port: int) -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def start() -> None:
        runner = make_runner(await make())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    return loop


async def measure(targets: dict[str, str], n: int, budget_s: float, stream: bool,
                  ) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in targets}
    payload = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Content-Type": "application/json",
               "X-Wattserve-Model-Deployment": "bench/m"}
    suffix = "?stream=1" if stream else ""
    end = time.monotonic() + budget_s
    async with aiohttp.ClientSession() as session:
        for url in targets.values():  # warm up connections and the activator's gate
            for _ in range(50):
                async with session.post(url + "/v1/chat/completions" + suffix, data=payload,
                                        headers=headers) as r:
                    await r.read()
        order = list(targets.items())
        for i in range(n):
            if time.monotonic() > end:
                break
            order = order[1:] + order[:1] if i % 2 else order
            for name, url in order:
                t0 = time.perf_counter()
                async with session.post(url + "/v1/chat/completions" + suffix, data=payload,
                                        headers=headers) as r:
                    await r.read()
                    assert r.status == 200, r.status
                out[name].append(time.perf_counter() - t0)
    return out


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--budget-s", type=float, default=120.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    up_port, act_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    serve_in_thread(upstream_app, up_port)
    activator = Activator(Fixed(upstream), Settings(warm_s=3600.0))

    async def make_activator() -> web.Application:
        return activator.app()

    serve_in_thread(make_activator, act_port)
    targets = {"direct": upstream, "activator": f"http://127.0.0.1:{act_port}"}
    report: dict[str, Any] = {"host": platform.node(), "cpus": os.cpu_count(),
                              "python": platform.python_version(), "results": {}}
    for stream in (False, True):
        kind = "stream (16 SSE chunks)" if stream else "json"
        samples = asyncio.run(measure(targets, args.requests, args.budget_s / 2, stream))
        row: dict[str, Any] = {}
        for name, values in samples.items():
            row[name] = {"n": len(values), "p50_ms": statistics.median(values) * 1e3,
                         "p95_ms": quantile(values, 0.95) * 1e3,
                         "p99_ms": quantile(values, 0.99) * 1e3}
        row["added_p50_ms"] = row["activator"]["p50_ms"] - row["direct"]["p50_ms"]
        row["added_p95_ms"] = row["activator"]["p95_ms"] - row["direct"]["p95_ms"]
        report["results"][kind] = row
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"activator overhead on {report['cpus']} CPUs, Python {report['python']}")
    print(f"{'response':<24}{'target':<11}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for kind, row in report["results"].items():
        for name in ("direct", "activator"):
            r = row[name]
            print(f"{kind:<24}{name:<11}{r['n']:>6}{r['p50_ms']:>9.3f}{r['p95_ms']:>9.3f}"
                  f"{r['p99_ms']:>9.3f}")
        print(f"{kind:<24}{'added':<11}{'':>6}{row['added_p50_ms']:>9.3f}"
              f"{row['added_p95_ms']:>9.3f}   (target: p50 <= 1 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
