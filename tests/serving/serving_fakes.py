"""A deterministic in-process engine for tests that do not need the real model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from wattserve_serving.engines.base import ChatPrompt, Chunk, PreparedPrompt, SamplingParams


class FakeEngine:
    """Whitespace tokenizer; generates "w0 w1 ..." with `delay_s` between tokens."""

    engine_name = "llamacpp"
    max_concurrency = 1

    def __init__(self, context_length: int = 64, delay_s: float = 0.0, load_s: float = 0.0):
        self.context_length = context_length
        self.delay_s = delay_s
        self.load_s = load_s
        self._ready = False
        self.produced = 0
        self.cancelled = 0

    async def load(self) -> None:
        await asyncio.sleep(self.load_s)
        self._ready = True

    def ready(self) -> bool:
        return self._ready

    async def close(self) -> None:
        self._ready = False

    async def render_chat(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        return ChatPrompt(" ".join(f"{m['role']}: {m['content']}" for m in messages))

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        return [len(w) for w in text.split()]

    async def generate(
        self, prompt: PreparedPrompt, params: SamplingParams
    ) -> AsyncIterator[Chunk]:
        try:
            for i in range(params.max_tokens):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                self.produced += 1
                last = i == params.max_tokens - 1
                yield Chunk(f"w{i} ", 1, "length" if last else None)
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled += 1
            raise


class FailingEngine(FakeEngine):
    """Fault injection: a failure that is not an EngineError after two tokens."""

    async def generate(self, prompt: Any, params: Any) -> Any:
        produced = 0
        async for chunk in super().generate(prompt, params):
            yield chunk
            produced += 1
            if produced == 2:
                raise RuntimeError("a bug mid-stream")
