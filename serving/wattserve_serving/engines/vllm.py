"""vLLM engine (GPU) via `vllm.AsyncLLMEngine`; `vllm` is imported only in `load()`.

Written against vllm 0.29.0 (serving/constraints-gpu.txt), where `AsyncLLMEngine` is an
alias of `vllm.v1.engine.async_llm.AsyncLLM`: the model config is the `model_config`
attribute, `get_tokenizer()` is synchronous (awaited when a version makes it a coroutine),
`generate(TokensPrompt, SamplingParams, request_id)` yields CUMULATIVE outputs, `abort` is a
coroutine. tests/serving/vllm_real.py checks all of it against the real package.

Installed with the `wattserve[gpu]` extra. vLLM batches internally, so many requests
may be in flight at once (`max_concurrency`); its own scheduler queues beyond that.
A closed iterator (client disconnect) aborts the request inside vLLM. The app's own OpenAI
layer (not vLLM's `OpenAIServingChat`) stays in front, so admission, metrics and energy
accounting are the same for both engines.
"""

from __future__ import annotations

import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator
from typing import Any

from wattserve_serving.engines.base import (
    ChatPrompt,
    Chunk,
    EngineError,
    EngineNotReady,
    PreparedPrompt,
    SamplingParams,
)

DEFAULT_MAX_CONCURRENCY = 256


class VLLMEngine:
    engine_name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        context_length: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tensor_parallel_size = max(1, tensor_parallel_size)
        self.context_length = context_length or 0
        self.max_concurrency = max_concurrency
        self._engine_kwargs = engine_kwargs or {}
        self._engine: Any = None
        self._tokenizer: Any = None
        self._vllm: Any = None

    async def load(self) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise EngineError("vLLM is not installed (pip install 'wattserve[gpu]')") from exc
        self._vllm = vllm
        kwargs: dict[str, Any] = {
            "model": self.model,
            "tensor_parallel_size": self.tensor_parallel_size,
            **self._engine_kwargs,
        }
        if self.context_length:
            kwargs["max_model_len"] = self.context_length
        args = vllm.AsyncEngineArgs(**kwargs)
        engine = vllm.AsyncLLMEngine.from_engine_args(args)
        self._tokenizer = await _maybe_await(engine.get_tokenizer())
        max_len = getattr(engine.model_config, "max_model_len", None)
        if isinstance(max_len, int) and max_len > 0:
            self.context_length = max_len
        self._engine = engine

    def ready(self) -> bool:
        return self._engine is not None

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            await _maybe_await(shutdown())

    def _require(self) -> Any:
        if self._engine is None:
            raise EngineNotReady("model not loaded")
        return self._engine

    async def render_chat(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        self._require()
        text = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return ChatPrompt(text=str(text), stop=(), add_bos=False)

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self._require()
        return list(self._tokenizer.encode(text, add_special_tokens=add_bos))

    async def generate(
        self, prompt: PreparedPrompt, params: SamplingParams
    ) -> AsyncIterator[Chunk]:
        engine = self._require()
        sampling = self._vllm.SamplingParams(
            n=1,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=max(0, params.top_k),  # 0: off (vLLM's canonical value)
            stop=list(params.stop + prompt.stop) or None,
            seed=params.seed,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            ignore_eos=params.ignore_eos,
        )
        request_id = uuid.uuid4().hex
        sent_chars = 0
        sent_tokens = 0
        finished = False
        try:
            stream = engine.generate(
                self._vllm.TokensPrompt(prompt_token_ids=list(prompt.token_ids)),
                sampling,
                request_id,
            )
            async for output in stream:
                completion = output.outputs[0]
                text = str(completion.text)
                n_tokens = len(completion.token_ids)
                finish = completion.finish_reason if output.finished else None
                piece, sent_chars = text[sent_chars:], len(text)
                produced, sent_tokens = n_tokens - sent_tokens, n_tokens
                if output.finished:
                    finished = True
                    yield Chunk(piece, produced, _finish(finish))
                    return
                if produced or piece:
                    yield Chunk(piece, produced)
            finished = True
            yield Chunk("", 0, "stop")
        finally:
            if not finished:
                with contextlib.suppress(Exception):  # the request may already be gone
                    await _maybe_await(engine.abort(request_id))


def _finish(reason: object) -> str:
    return "length" if reason == "length" else "stop"


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
