"""What the serving API's features cost: generated tokens per second of one app server with
the real SmolLM2, per request kind, side by side with plain requests in the same run.

    python benchmarks/serving_features.py                   # table on stdout
    python benchmarks/serving_features.py --out docs/benchmarks-serving-features.md

Kinds (each 48 generated tokens, `ignore_eos`, chat unless said): plain; `logprobs` with
`top_logprobs: 5`; a `logit_bias` of 300 tokens; a JSON schema (`response_format`); a forced
tool call (`tools`, a named `tool_choice`); `n: 4` (tokens of all four choices); and four
prompts in one completions request. Rounds are interleaved (the kinds rotate) so background
load hits them alike; the figure per kind is the median over rounds of generated tokens /
request wall time (its prompt already in the KV cache: the same prompt is sent first with
one token), and the ratio is to plain requests of the same rounds. Bounded by
`--rounds` and `--budget-s`; the server is always stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from wattserve.devcluster.processes import free_port

TOKENS = 48
ASK = [{"role": "user", "content": "Describe a walk along the sea, step by step."}]
SCHEMA = {"type": "object", "properties": {"steps": {"type": "array",
                                                     "items": {"type": "string"}}},
          "required": ["steps"], "additionalProperties": False}
TOOL = {"type": "function", "function": {"name": "walk", "parameters": SCHEMA}}


def kinds() -> dict[str, tuple[str, dict[str, Any], int]]:
    """name -> (path, body, generated tokens expected)."""
    chat: dict[str, Any] = {"model": "smollm2", "messages": ASK, "max_tokens": TOKENS,
                            "temperature": 0.7, "seed": 1, "ignore_eos": True}
    return {
        "plain": ("/v1/chat/completions", chat, TOKENS),
        "logprobs, top 5": ("/v1/chat/completions",
                            {**chat, "logprobs": True, "top_logprobs": 5}, TOKENS),
        "logit_bias, 300 tokens": ("/v1/chat/completions",
                                   {**chat, "logit_bias": {str(1000 + i): -1
                                                           for i in range(300)}}, TOKENS),
        "response_format JSON schema": ("/v1/chat/completions", {**chat, "response_format": {
            "type": "json_schema", "json_schema": {"name": "walk", "schema": SCHEMA}}}, TOKENS),
        "forced tool call": ("/v1/chat/completions", {**chat, "tools": [TOOL], "tool_choice": {
            "type": "function", "function": {"name": "walk"}}}, TOKENS),
        "n: 4": ("/v1/chat/completions", {**chat, "n": 4}, 4 * TOKENS),
        "4 prompts (completions)": ("/v1/completions", {
            "model": "smollm2", "prompt": ["The sea is", "A walk", "Waves", "At dusk"],
            "max_tokens": TOKENS, "temperature": 0.7, "seed": 1, "ignore_eos": True},
            4 * TOKENS),
    }


@contextlib.contextmanager
def server(threads: int) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "wattserve_serving.cli", "--model", "smollm2",
           "--model-name", "smollm2", "--port", str(port), "--host", "127.0.0.1",
           "--threads", str(threads), "--context-length", "2048"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            time.sleep(0.5)
        else:
            raise RuntimeError("server not ready after 120 s")
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def measure(url: str, rounds: int, budget_s: float,
            log: Callable[[str], None]) -> dict[str, list[float]]:
    table = kinds()
    rates: dict[str, list[float]] = {name: [] for name in table}
    began = time.monotonic()
    with httpx.Client(timeout=300) as client:
        for path, body, _ in table.values():  # warm-up: grammars compiled, prompts cached
            client.post(url + path, json={**body, "max_tokens": 2}).raise_for_status()
        names = list(table)
        for r in range(rounds):
            if time.monotonic() - began > budget_s:
                log(f"budget reached after {r} rounds")
                break
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                path, body, expected = table[name]
                # the same prompt first, so each kind's timed request finds it in the KV
                # cache (as a repeat would), whatever kind ran before it
                client.post(url + path, json={**body, "max_tokens": 1}).raise_for_status()
                t0 = time.perf_counter()
                resp = client.post(url + path, json=body)
                wall = time.perf_counter() - t0
                resp.raise_for_status()
                made = resp.json()["usage"]["completion_tokens"]
                if made != expected:
                    raise RuntimeError(f"{name}: {made} tokens, expected {expected}")
                rates[name].append(made / wall)
            log(f"round {r + 1}/{rounds}: plain {rates['plain'][-1]:.1f} tok/s")
    return rates


def markdown(rates: dict[str, list[float]], threads: int, seconds: float) -> str:
    plain = statistics.median(rates["plain"])
    lines = [
        "# What the serving API's features cost (SmolLM2, llama.cpp engine)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python "
        f"benchmarks/serving_features.py` ({seconds:.0f} s; {threads} threads, "
        f"{len(rates['plain'])} interleaved rounds of {TOKENS} generated tokens per choice, "
        "`ignore_eos`, temperature 0.7; the machine's other work shares its 2 cores).",
        "",
        "| request kind | generated tok/s (median) | vs plain |",
        "|---|---|---|",
    ]
    for name, values in rates.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.1f} | {median / plain:.2f}× |")
    lines += ["", "Wall time per request includes the HTTP round trip and the prompt's last "
              "token (each timed request follows a one-token request with the same prompt, "
              "so the rest is in the KV cache; with four prompts only the last one is); `n` "
              "and several prompts count every choice's tokens.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[features {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    began = time.monotonic()
    log("starting the server (real SmolLM2)")
    with server(args.threads) as url:
        rates = measure(url, args.rounds, args.budget_s, log)
    text = markdown(rates, args.threads, time.monotonic() - began)
    print(text)
    if args.out:
        args.out.write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
