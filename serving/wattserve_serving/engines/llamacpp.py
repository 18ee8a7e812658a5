"""llama.cpp engine (llama-cpp-python on a GGUF file), CPU.

One `Llama` context serves one generation at a time, so generation runs on a single
worker thread; the event loop only receives token pieces via `call_soon_threadsafe`.
Closing the async iterator (client disconnect) sets a cancel flag the worker checks
before every token, so token production stops within one token.
"""

from __future__ import annotations

import asyncio
import codecs
import random
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from wattserve_serving.engines.base import (
    ChatPrompt,
    Chunk,
    EngineError,
    EngineNotReady,
    PreparedPrompt,
    SamplingParams,
)
from wattserve_serving.engines.stops import StopMatcher

_DONE = object()


class LlamaCppEngine:
    engine_name = "llamacpp"
    max_concurrency = 1

    def __init__(self, model_path: str, threads: int, context_length: int) -> None:
        self.model_path = model_path
        self.threads = threads
        self.context_length = context_length
        self._llm: Any = None
        self._formatter: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")

    # -- lifecycle ---------------------------------------------------------------
    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load_sync)

    def _load_sync(self) -> None:
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:  # pragma: no cover - exercised via the CLI message
            raise EngineError(
                "llama-cpp-python is not installed (pip install 'wattserve[cpu]')"
            ) from exc
        llm = Llama(
            model_path=self.model_path,
            n_ctx=self.context_length,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        self.context_length = llm.n_ctx()
        self._llm = llm

    def ready(self) -> bool:
        return self._llm is not None

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._llm = None

    # -- prompts -----------------------------------------------------------------
    def _require(self) -> Any:
        if self._llm is None:
            raise EngineNotReady("model not loaded")
        return self._llm

    async def render_chat(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        self._require()
        if self._formatter is None:
            raise EngineError("the GGUF has no tokenizer.chat_template; use /v1/completions")
        result = self._formatter(messages=messages)
        return ChatPrompt(
            text=result.prompt,
            stop=tuple(s for s in (result.stop or []) if s),
            add_bos=not result.added_special,
        )

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        llm = self._require()
        ids: list[int] = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        return ids

    # -- generation --------------------------------------------------------------
    async def generate(
        self, prompt: PreparedPrompt, params: SamplingParams
    ) -> AsyncIterator[Chunk]:
        self._require()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        future: Future[None] = self._executor.submit(self._run, prompt, params, cancel, emit)
        future.add_done_callback(_swallow)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise EngineError(f"generation failed: {item}") from item
                assert isinstance(item, Chunk)
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            cancel.set()

    def _run(
        self,
        prompt: PreparedPrompt,
        params: SamplingParams,
        cancel: threading.Event,
        emit: Callable[[object], None],
    ) -> None:
        try:
            self._generate_sync(prompt, params, cancel, emit)
        except BaseException as exc:
            emit(exc)
        finally:
            emit(_DONE)

    def _generate_sync(
        self,
        prompt: PreparedPrompt,
        params: SamplingParams,
        cancel: threading.Event,
        emit: Callable[[object], None],
    ) -> None:
        import llama_cpp

        llm = self._llm
        if llm is None:
            raise EngineNotReady("model not loaded")
        llm.set_seed(params.seed if params.seed is not None else random.getrandbits(32))
        vocab = llm._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(params.stop + prompt.stop)
        produced = 0
        finish = "length"
        if cancel.is_set():
            return
        for token in llm.generate(
            list(prompt.token_ids),
            top_k=params.top_k or 40,  # llama-cpp-python's default when unset
            top_p=params.top_p,
            min_p=0.05,
            temp=params.temperature,
            repeat_penalty=1.0,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
        ):
            if cancel.is_set():
                return
            if not params.ignore_eos and llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            produced += 1  # noqa: SIM113 - counts only non-EOG tokens
            text, stopped = stops.feed(decoder.decode(llm.detokenize([token])))
            if stopped:
                emit(Chunk(text, 1, "stop"))
                return
            if produced >= params.max_tokens:
                emit(Chunk(text + stops.flush() + decoder.decode(b"", final=True), 1, "length"))
                return
            emit(Chunk(text, 1))
        emit(Chunk(stops.flush() + decoder.decode(b"", final=True), 0, finish))


def _swallow(future: Future[None]) -> None:
    if not future.cancelled():
        future.exception()
