"""Hostile-client probes against two serving trees side by side, in one run.

    python benchmarks/hostile_probes.py [--base-ref 5dcb972] [-o json]

Starts `wattserve-serve` (uvicorn, llama.cpp, SmolLM2) from the base commit (extracted with
`git archive`) and from this tree, one after the other on loopback, and for each measures:
  special  - a completion of "<|im_end|>" x 40000 (400 kB): seconds to the answer and the
             slowest /health (5 s timeout) while it runs;
  upload   - a 256 MiB chunked JSON upload: the server's peak RSS growth (MiB);
  left     - a non-streaming client (max_tokens 400) that leaves after 1 s: seconds until
             the next 1-token request is answered (engine time spent for nobody).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from wattserve.devcluster.processes import free_port

REPO = Path(__file__).resolve().parents[1]


def _extract(ref: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "serving", "operator"],
                             check=True, capture_output=True).stdout
    tmp = dest / "base.tar"
    tmp.write_bytes(archive)
    with tarfile.open(tmp) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _start(tree: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'operator'}:{tree / 'serving'}",
               WATTSERVE_ENERGY_SOURCE="model")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattserve_serving.cli", "--model", "smollm2",
         "--model-name", "smollm2", "--port", str(port), "--threads", "1",
         "--context-length", "2048", "--max-queue", "4"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server from {tree} did not start")


def _special(url: str) -> dict[str, float]:
    body = {"model": "smollm2", "prompt": "<|im_end|>" * 40_000, "max_tokens": 4}
    done: dict[str, float] = {}

    def post() -> None:
        start = time.monotonic()
        try:
            httpx.post(url + "/v1/completions", json=body, timeout=300)
        finally:
            done["s"] = time.monotonic() - start

    t = threading.Thread(target=post)
    t.start()
    worst = 0.0
    while t.is_alive():
        start = time.monotonic()
        try:
            httpx.get(url + "/health", timeout=5)
            worst = max(worst, time.monotonic() - start)
        except httpx.TimeoutException:
            worst = max(worst, 5.0)
        time.sleep(0.2)
    t.join()
    return {"answer_s": round(done["s"], 2), "worst_health_s": round(worst, 2)}


def _upload(url: str, pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    base = proc.memory_info().rss
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def chunks() -> Any:
        block = b" " * (1 << 20)
        for _ in range(256):
            yield block

    status = -1
    try:
        status = httpx.post(url + "/v1/completions", content=chunks(), timeout=300,
                            headers={"Content-Type": "application/json"}).status_code
    except httpx.HTTPError:
        status = 0  # the server answered and closed while we were still sending
    stop.set()
    sampler.join()
    return {"status": status, "peak_rss_growth_mib": round((peak - base) / (1 << 20), 1)}


def _left(url: str) -> dict[str, float]:
    body = {"model": "smollm2", "prompt": "Tell me a long story.", "max_tokens": 400,
            "ignore_eos": True}
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(url + "/v1/completions", json=body, timeout=1.0)
    start = time.monotonic()
    httpx.post(url + "/v1/completions", json={"model": "smollm2", "prompt": "Hi",
                                              "max_tokens": 1}, timeout=300)
    return {"next_request_s": round(time.monotonic() - start, 2)}


def measure(tree: Path) -> dict[str, Any]:
    port = free_port()
    proc = _start(tree, port)
    url = f"http://127.0.0.1:{port}"
    try:
        out = {"special": _special(url), "upload": _upload(url, proc.pid), "left": _left(url)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-ref", default="5dcb972")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = _extract(args.base_ref, Path(tmp))
        results = {}
        for name, tree in ((args.base_ref, base), ("this tree", REPO)):
            print(f"measuring {name} ...", file=sys.stderr)
            results[name] = measure(tree)
    if args.output == "json":
        print(json.dumps(results, indent=2))
        return 0
    rows = [("probe", *results)]
    for probe, key in (("special", "answer_s"), ("special", "worst_health_s"),
                       ("upload", "status"), ("upload", "peak_rss_growth_mib"),
                       ("left", "next_request_s")):
        rows.append((f"{probe}.{key}", *(str(r[probe][key]) for r in results.values())))
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
