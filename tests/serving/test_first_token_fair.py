"""First-token-fair llama.cpp serving with the REAL SmolLM2: a burst of simultaneous requests
each gets its first token before the earlier ones finish, and every output is the one
serving them strictly in turn gives (greedy, and seeded sampling)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from wattserve_serving.engines.base import PreparedPrompt, SamplingParams
from wattserve_serving.engines.llamacpp import LlamaCppEngine

from serving_helpers import smollm2_path

pytestmark = pytest.mark.model
THREADS = max(1, min(2, os.cpu_count() or 1))
# Different prompts (a shared chat prefix, different contents) and one repeated.
QUESTIONS = ["Say hello.", "What is the capital of France?", "Count to five.",
             "Name a colour.", "Say hello.", "Why is the sky blue?"]


async def _prompts(engine: LlamaCppEngine) -> list[PreparedPrompt]:
    out = []
    for q in QUESTIONS:
        chat = await engine.render_chat([{"role": "user", "content": q}])
        assert chat.token_ids
        out.append(PreparedPrompt(chat.text, chat.token_ids, chat.stop))
    return out


async def _one(engine: LlamaCppEngine, prompt: PreparedPrompt, params: SamplingParams,
               t0: float) -> dict[str, Any]:
    texts, first, finish = [], None, None
    async for chunk in engine.generate(prompt, params):
        if chunk.tokens and first is None:
            first = time.monotonic() - t0
        texts.append(chunk.text)
        finish = chunk.finish_reason
    return {"text": "".join(texts), "first": first, "done": time.monotonic() - t0,
            "finish": finish}


async def _burst(parallel: int, params: list[SamplingParams]) -> list[dict[str, Any]]:
    engine = LlamaCppEngine(str(smollm2_path()), THREADS, 512, parallel=parallel)
    await engine.load()
    try:
        prompts = await _prompts(engine)
        t0 = time.monotonic()
        return list(await asyncio.gather(*(_one(engine, p, s, t0)
                                           for p, s in zip(prompts, params, strict=True))))
    finally:
        await engine.close()


@pytest.mark.parametrize("sampling", ["greedy", "seeded"])
def test_burst_output_equals_serving_in_turn(sampling: str) -> None:
    params = [SamplingParams(max_tokens=12, temperature=0.0) if sampling == "greedy"
              else SamplingParams(max_tokens=12, temperature=0.8, top_p=0.95, seed=100 + i)
              for i in range(len(QUESTIONS))]
    in_turn = asyncio.run(_burst(1, params))
    fair = asyncio.run(_burst(len(QUESTIONS), params))
    assert [r["text"] for r in fair] == [r["text"] for r in in_turn]
    assert [r["finish"] for r in fair] == [r["finish"] for r in in_turn]
    assert all(r["text"] for r in fair)


def test_every_first_token_comes_before_the_first_request_finishes() -> None:
    params = [SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)] * len(QUESTIONS)
    in_turn = asyncio.run(_burst(1, params))
    fair = asyncio.run(_burst(len(QUESTIONS), params))
    # In turn: the last request's first token waits for every earlier request to finish.
    assert max(r["first"] for r in in_turn) > min(r["done"] for r in in_turn)
    # First-token-fair: every request has its first token before any request is done.
    assert max(r["first"] for r in fair) < min(r["done"] for r in fair), fair
    print(f"\nlast first token of {len(QUESTIONS)}: in turn "
          f"{max(r['first'] for r in in_turn):.2f}s, fair {max(r['first'] for r in fair):.2f}s;"
          f" all done: in turn {max(r['done'] for r in in_turn):.2f}s, "
          f"fair {max(r['done'] for r in fair):.2f}s")
