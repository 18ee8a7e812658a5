"""What the prompt's log probabilities cost (completions `echo` with `logprobs`): the latency
of one completions request with a ~300-token prompt and `max_tokens: 1`, with and without
`echo` + `logprobs: 1`, side by side in one run of one app server with the real SmolLM2.

    python benchmarks/echo_logprobs.py                 # markdown section on stdout

Kinds: plain (`logprobs: 1`, no echo); echo (`echo`, `logprobs: 1`: lm-evaluation-harness's
loglikelihood request); echo with `max_tokens: 0` (lm-eval's older form: no token
generated). Each is timed with a prompt the KV cache does not hold (a number of its own
first, so the prompt shares no prefix with any earlier one) and again with the same prompt
repeated (in the cache: a plain request evaluates only its last token, the echo still
scores every position). Rounds are interleaved (the kinds rotate) so background load hits
them alike; the figure is the median wall time per request over rounds. Bounded by
`--rounds` and `--budget-s`; the server is always stopped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import httpx
from serving_features import server  # benchmarks/ is on sys.path: run as a script

PARAGRAPH = ("The tide came in slowly over the flat grey sand, filling the pools between the "
             "rocks where small crabs hid from the gulls. An old fisherman walked along the "
             "shore with his dog, counting the boats that had gone out before dawn. ")
KINDS: dict[str, dict[str, Any]] = {
    "plain, max_tokens 1": {"max_tokens": 1, "logprobs": 1},
    "echo + logprobs 1, max_tokens 1": {"max_tokens": 1, "logprobs": 1, "echo": True},
    "echo + logprobs 1, max_tokens 0": {"max_tokens": 0, "logprobs": 1, "echo": True},
}


def prompt(n: int) -> str:
    """~300 tokens of SmolLM2's, starting with a number of its own (no shared prefix)."""
    return f"{n} " + PARAGRAPH * 6


def measure(url: str, rounds: int, budget_s: float) -> tuple[dict[str, list[float]], int]:
    walls: dict[str, list[float]] = {f"{k} ({c})": [] for c in ("new prompt", "cached")
                                     for k in KINDS}
    names = list(KINDS)
    began = time.monotonic()
    tokens = 0
    with httpx.Client(timeout=300) as client:

        def post(body: dict[str, Any]) -> float:
            nonlocal tokens
            t0 = time.perf_counter()
            resp = client.post(url + "/v1/completions", json=body)
            wall = time.perf_counter() - t0
            resp.raise_for_status()
            tokens = resp.json()["usage"]["prompt_tokens"]
            return wall

        post({"model": "smollm2", "prompt": prompt(10**6), **KINDS[names[1]]})  # warm-up
        for r in range(rounds):
            if time.monotonic() - began > budget_s:
                print(f"budget reached after {r} rounds", file=sys.stderr)
                break
            for i, name in enumerate(names[r % len(names):] + names[:r % len(names)]):
                body = {"model": "smollm2", "prompt": prompt(r * 10 + i), **KINDS[name]}
                walls[f"{name} (new prompt)"].append(post(body))
                walls[f"{name} (cached)"].append(post(body))
    return walls, tokens


def markdown(walls: dict[str, list[float]], tokens: int, threads: int, seconds: float) -> str:
    rounds = len(next(iter(walls.values())))
    lines = [
        "## Prompt log probabilities (completions `echo` + `logprobs`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python "
        f"benchmarks/echo_logprobs.py` ({seconds:.0f} s; {threads} threads, {rounds} "
        f"interleaved rounds, a {tokens}-token prompt; the machine's other work shares its "
        "2 cores): median wall time of one completions request.",
        "",
        "| request | prompt not in the KV cache | prompt in the KV cache |",
        "|---|---|---|",
    ]
    base = {c: statistics.median(walls[f"{next(iter(KINDS))} ({c})"])
            for c in ("new prompt", "cached")}
    for name in KINDS:
        cells = []
        for c in ("new prompt", "cached"):
            median = statistics.median(walls[f"{name} ({c})"])
            cells.append(f"{median * 1000:.0f} ms ({median / base[c]:.1f}×)")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    began = time.monotonic()
    with server(args.threads) as url:
        walls, tokens = measure(url, args.rounds, args.budget_s)
    print(markdown(walls, tokens, args.threads, time.monotonic() - began))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
