"""Overload (429) and client disconnect with the real model, max queue 1."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from serving_helpers import LoopbackServer

pytestmark = pytest.mark.model
MAX_QUEUE = 1


def test_overload_gets_429(model_server: LoopbackServer) -> None:
    client = openai.AsyncOpenAI(base_url=model_server.url + "/v1", api_key="x", max_retries=0,
                                timeout=120)

    async def one() -> str:
        try:
            await client.chat.completions.create(
                model="smollm2", max_tokens=48, temperature=0,
                messages=[{"role": "user", "content": "Write a long story about a cat."}],
            )
            return "ok"
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "1"
            assert exc.body["code"] == "queue_full"  # type: ignore[index]
            return "429"

    async def burst() -> list[str]:
        try:
            return list(await asyncio.gather(*(one() for _ in range(5))))
        finally:
            await client.close()

    results = asyncio.run(burst())
    assert sorted(results) == ["429", "429", "429", "ok", "ok"], results


def test_disconnect_cancels_generation(model_server: LoopbackServer) -> None:
    body = {"model": "smollm2", "max_tokens": 400, "stream": True, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Count to one thousand."}]}
    key = "wattserve_generation_tokens_total"
    before = model_server.metrics()[key]
    with httpx.stream("POST", model_server.url + "/v1/chat/completions", json=body,
                      timeout=60) as resp:
        assert resp.status_code == 200
        for n, _ in enumerate(resp.iter_lines()):
            if n >= 10:
                break
    time.sleep(0.5)  # let the cancel land (at most one more token)
    after_close = model_server.metrics()[key]
    time.sleep(1.0)
    later = model_server.metrics()
    assert later[key] == after_close, "tokens kept being generated after the client left"
    assert 4 <= after_close - before < 400
    assert later["wattserve_requests_in_flight"] == 0
    # The slot is free again: a new request is served right away.
    ok = httpx.post(model_server.url + "/v1/completions",
                    json={"model": "smollm2", "prompt": "Hi", "max_tokens": 2}, timeout=60)
    assert ok.status_code == 200
