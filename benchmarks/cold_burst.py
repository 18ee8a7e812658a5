"""Zero -> first token for a burst held by the activator, side by side in one run (loopback).

Each round starts from zero: a burst of ``--requests`` simultaneous streaming chat
requests goes to the REAL activator, which holds them and asks for one wake-up; the wake-up
starts a REAL serving process (``python -m wattserve_serving.cli``, SmolLM2-135M, llama.cpp,
2 threads) on loopback; the activator finds it ready by asking its ``/health`` and forwards
the burst. Two serving configurations, interleaved rounds (rotating order):

* ``in-turn``: ``--parallel 1`` (one request at a time, each run to its end: before);
* ``first-token-fair``: ``--parallel <requests>`` (every held request gets its prefill and
  first token before any continues its decode: after).

``--baseline-src DIR`` adds a third configuration: ``first-token-fair`` served by the
serving code of another checkout (``git worktree add DIR <rev>``), so a change to the
serving process's own start (imports, model load) is measured side by side in one run.

What it cannot show: a pod start, the kubelet, kube-proxy, an ``oci://`` image volume
(tests/integration/test_scale_to_zero_realnode.py measures those on the real node).

    python benchmarks/cold_burst.py --rounds 3 --requests 16 [--baseline-src DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "serving"))
sys.path.insert(0, str(ROOT / "operator"))

from wattserve.devcluster.processes import free_port  # noqa: E402
from wattserve_activator.discovery import Target  # noqa: E402
from wattserve_activator.holding import Settings  # noqa: E402
from wattserve_activator.server import Activator, make_runner  # noqa: E402

CONFIGS = ("in-turn", "first-token-fair")
BASELINE = "first-token-fair, baseline code"



class Spawning:
    """Discovery whose wake-up starts a real serving process (what the operator and the
    kubelet do on a cluster); a replica is ready when its own /health answers 200."""

    def __init__(self, parallel: int, threads: int, src: Path = ROOT) -> None:
        self.parallel, self.threads, self.src = parallel, threads, src
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.woke_at = 0.0

    async def resolve(self, namespace: str, service: str) -> Target:
        return Target(namespace, service, service, (("app", service),), port=self.port)

    async def ready_endpoints(self, target: Target) -> list[str]:
        if self.proc is None:
            return []
        url = f"http://127.0.0.1:{self.port}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as s, \
                    s.get(url + "/health") as r:
                return [url] if r.status == 200 else []
        except (aiohttp.ClientError, TimeoutError, OSError):
            return []

    async def activate(self, target: Target) -> None:
        self.woke_at = time.monotonic()
        env = {**os.environ, "PYTHONPATH": f"{self.src / 'operator'}:{self.src / 'serving'}",
               "WATTSERVE_ENERGY_SOURCE": "model"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wattserve_serving.cli", "--model", "smollm2",
             "--model-name", "smollm2", "--port", str(self.port), "--threads",
             str(self.threads), "--parallel", str(self.parallel), "--max-queue", "64",
             "--context-length", "512", "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


async def one(s: aiohttp.ClientSession, url: str, t0: float) -> dict[str, Any]:
    out: dict[str, Any] = {"tokens": 0}
    body = {"model": "smollm2", "stream": True, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hello."}]}
    async with s.post(url + "/v1/chat/completions", json=body,
                      headers={"X-Wattserve-Model-Deployment": "bench/smollm2"}) as r:
        out["status"] = r.status
        async for line in r.content:
            if line.startswith(b"data: {"):
                delta = json.loads(line[6:])["choices"][0].get("delta") or {}
                if delta.get("content"):
                    out.setdefault("ttft", time.monotonic() - t0)
                    out["tokens"] += 1
    out["total"] = time.monotonic() - t0
    return out


async def round_(config: str, requests: int, threads: int,
                 baseline: Path | None = None) -> dict[str, Any]:
    src = baseline if config == BASELINE and baseline is not None else ROOT
    disco = Spawning(1 if config == "in-turn" else requests, threads, src)
    act = Activator(disco, Settings(deadline_s=120.0, poll_s=0.05))
    runner = make_runner(act.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as s:
            t0 = time.monotonic()
            res = await asyncio.gather(*(one(s, f"http://127.0.0.1:{port}", t0)
                                         for _ in range(requests)))
    finally:
        await runner.cleanup()
    assert all(r["status"] == 200 and r["tokens"] > 0 for r in res), res
    ttft = sorted(r["ttft"] for r in res)
    held = act.metrics.hold.labels("bench", "smollm2")
    hold_sum = sum(s.value for m in held.collect() for s in m.samples if s.name.endswith("_sum"))
    return {"config": config, "ttft": ttft, "total": max(r["total"] for r in res),
            "mean_hold": hold_sum / requests}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--baseline-src", type=Path, default=None,
                   help="a checkout whose serving code is measured as a third configuration")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    configs = CONFIGS + ((BASELINE,) if args.baseline_src else ())
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for n in range(args.rounds):
        order = configs[n % len(configs):] + configs[:n % len(configs)]  # rotating
        for config in order:
            r = asyncio.run(round_(config, args.requests, args.threads, args.baseline_src))
            rows[config].append(r)
            print(f"round {n + 1}/{args.rounds} {config:17s} hold {r['mean_hold']:.2f}s "
                  f"first token p50 {pct(r['ttft'], 0.5):.2f}s p99 {pct(r['ttft'], 0.99):.2f}s"
                  f" all done {r['total']:.2f}s", file=sys.stderr, flush=True)
    summary = {}
    for config, rs in rows.items():
        summary[config] = {
            "mean_hold_s": round(statistics.median(r["mean_hold"] for r in rs), 3),
            "first_token_p50_s": round(statistics.median(pct(r["ttft"], 0.5) for r in rs), 3),
            "first_token_p99_s": round(statistics.median(pct(r["ttft"], 0.99) for r in rs), 3),
            "after_hold_p99_s": round(statistics.median(
                pct(r["ttft"], 0.99) - r["mean_hold"] for r in rs), 3),
            "all_done_s": round(statistics.median(r["total"] for r in rs), 3),
        }
    meta = {"rounds": args.rounds, "requests": args.requests, "threads": args.threads,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_avg": os.getloadavg()}
    if args.json:
        print(json.dumps({"meta": meta, "summary": summary}, indent=1))
        return 0
    if args.baseline_src:
        meta["baseline_src"] = str(args.baseline_src)
    print(f"{args.requests} held requests, {args.rounds} rounds (medians), {meta}")
    print("| serving | mean hold s | first token p50 s | p99 s | p99 after hold s | all done s |")
    print("|---|---|---|---|---|---|")
    for config, s in summary.items():
        print(f"| {config} | {s['mean_hold_s']} | {s['first_token_p50_s']} | "
              f"{s['first_token_p99_s']} | {s['after_hold_p99_s']} | {s['all_done_s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
