"""A long prompt's prefill on the REAL SmolLM2: evaluated in blocks of ``n_batch`` tokens with
the same numbers as one ``Llama.eval`` call, and stopped between blocks when its client
leaves.

Before the fix the whole prompt went to llama.cpp in one call that never looked at the
job's cancel flag: a client that sent ~1900 tokens and left at once kept the engine busy
for the whole prefill (12 s on one thread in the fuzzing run) while /metrics already showed
it idle, and the next request waited behind it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from wattserve_serving.config import ServeConfig
from wattserve_serving.engines.base import PreparedPrompt, SamplingParams
from wattserve_serving.engines.llamacpp import LlamaCppEngine
from wattserve_serving.engines.logprobs import token_logprob

from serving_helpers import LoopbackServer, smollm2_path

pytestmark = pytest.mark.model
THREADS = max(1, min(2, os.cpu_count() or 1))
CONTEXT = 2048
LONG = "word " * 1900  # 1901 tokens with BOS: four blocks of 512


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    cfg = ServeConfig(model=str(smollm2_path()), model_name="smollm2", engine="llamacpp",
                      threads=THREADS, max_queue=4, context_length=CONTEXT, pool="cpu-test",
                      namespace="test", model_deployment="smollm2")
    server = LoopbackServer(cfg).start()
    yield server
    server.stop()


def test_a_client_that_leaves_during_prefill_frees_the_engine_within_a_block(
        server: LoopbackServer) -> None:
    llm = server.api.engine._llm
    prompt_len = len(llm.tokenize(LONG.encode(), add_bos=True))
    assert prompt_len > 3 * llm.n_batch
    calls: list[tuple[int, float]] = []  # (tokens, seconds) of each eval call
    began = threading.Event()
    real = llm.eval

    def counted(tokens: Any) -> None:
        began.set()
        start = time.perf_counter()
        real(tokens)
        calls.append((len(tokens), time.perf_counter() - start))

    llm.eval = counted
    try:
        body = json.dumps({"model": "smollm2", "prompt": LONG, "max_tokens": 1}).encode()
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            assert began.wait(60), "the prefill never began"
            time.sleep(0.2)  # the client leaves while the first block is evaluated
        start = time.perf_counter()
        probe = httpx.post(server.url + "/v1/completions", timeout=120,
                           json={"model": "smollm2", "prompt": "Hi", "max_tokens": 1})
        waited = time.perf_counter() - start
    finally:
        del llm.eval
    assert probe.status_code == 200, probe.text
    long_calls = [(n, s) for n, s in calls if n > 16]  # the probe's prefill is a few tokens
    evaluated = sum(n for n, _ in long_calls)
    # Before: one call of the whole prompt. Now: blocks, and none after the client left
    # but the one under way (and, on a machine that notices late, perhaps one more).
    assert evaluated < prompt_len and len(long_calls) <= 2, calls
    assert all(n <= llm.n_batch for n, _ in long_calls), calls
    # What the whole prefill would have cost, from the blocks' own speed; the probe waited
    # for at most the block under way (a quarter of it), not for the rest of the prompt.
    whole = sum(s for _, s in long_calls) / evaluated * prompt_len
    assert waited < 0.75 * whole, (waited, whole, calls)
    print(f"\nthe next request waited {waited:.2f}s; the whole prefill takes {whole:.2f}s")
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_a_prefill_in_blocks_gives_the_numbers_of_one_eval_call() -> None:
    """Greedy tokens and their log probabilities after a 1100-token prompt (three blocks),
    bit for bit those of llama.cpp evaluating the prompt in one `Llama.eval` call, as the
    engine did before it went block by block."""
    from llama_cpp import Llama, llama_get_logits_ith

    path = str(smollm2_path())
    steps = 4

    async def served(ids: list[int]) -> list[Any]:
        engine = LlamaCppEngine(path, THREADS, CONTEXT)
        await engine.load()
        try:
            out = []
            async for chunk in engine.generate(
                    PreparedPrompt("", list(ids)),
                    SamplingParams(max_tokens=steps, temperature=0.0, logprobs=0,
                                   ignore_eos=True)):
                out += chunk.logprobs
            return out
        finally:
            await engine.close()

    ref = Llama(model_path=path, n_ctx=CONTEXT, n_threads=THREADS, n_threads_batch=THREADS,
                verbose=False)
    ids = ref.tokenize(("The quick brown fox jumps over the lazy dog. " * 110).encode(),
                       add_bos=True)[:1100]
    assert len(ids) > 2 * ref.n_batch
    expected = []
    ref.eval(ids)  # the whole prompt in one call
    for _ in range(steps):
        row = np.ctypeslib.as_array(llama_get_logits_ith(ref._ctx.ctx, -1),
                                    shape=(ref.n_vocab(),)).copy()
        token = int(row.argmax())
        expected.append(token_logprob(row, token, 0, lambda t: bytes(ref.detokenize([t]))))
        ref.eval([token])
    ref.close()
    got = asyncio.run(served(ids))
    assert [(e.token_bytes, e.logprob) for e in got] == \
        [(e.token_bytes, e.logprob) for e in expected]
