"""llama.cpp as an embedding model (``spec.model.task: embedding``): one pooled vector per
input, for ``/v1/embeddings``. It does not generate text.

The context is created with embeddings on, one sequence per decode, and a batch as long as
the context, so every input is pooled over all its tokens at once (llama.cpp requires a
whole sequence in one batch for pooled outputs). The pooling is the GGUF's own (mean for
BERT-style models, last token for the decoder-based embedders); a GGUF that names none
(a chat model's) is mean-pooled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wattserve_serving.engines.base import EngineError, EngineNotReady, LoadsOnItsThread
from wattserve_serving.engines.embedding import EmbeddingOnly, normalised


class LlamaCppEmbedder(LoadsOnItsThread, EmbeddingOnly):
    engine_name = "llamacpp"

    def __init__(self, model_path: str, threads: int, context_length: int) -> None:
        self.model_path = model_path
        self.threads = threads
        self.context_length = context_length
        self.max_concurrency = 1
        self.dimensions = 0  # known once loaded
        self.pooling = ""
        self._llm: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp-embed")

    # -- lifecycle ---------------------------------------------------------------
    def _load_sync(self) -> None:
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - exercised via the CLI message
            raise EngineError(
                "llama-cpp-python is not installed (pip install 'wattserve[cpu]')") from exc
        llm = self._open(llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED)
        pooling = llm.pooling_type()
        if pooling == llama_cpp.LLAMA_POOLING_TYPE_NONE:  # the GGUF names no pooling
            llm.close()
            llm = self._open(llama_cpp.LLAMA_POOLING_TYPE_MEAN)
            pooling = llm.pooling_type()
        names = {llama_cpp.LLAMA_POOLING_TYPE_MEAN: "mean", llama_cpp.LLAMA_POOLING_TYPE_CLS:
                 "cls", llama_cpp.LLAMA_POOLING_TYPE_LAST: "last"}
        if pooling not in names:
            llm.close()
            raise EngineError(f"unsupported pooling type {pooling} (a reranker?)")
        self.pooling = names[pooling]
        self.dimensions = int(llm.n_embd())
        self.context_length = int(llm.n_ctx())
        self._llm = llm

    def _open(self, pooling: int) -> Any:
        from llama_cpp import Llama

        return Llama(model_path=self.model_path, embedding=True, n_ctx=self.context_length,
                     n_batch=self.context_length, n_ubatch=self.context_length,
                     n_threads=self.threads, n_threads_batch=self.threads,
                     pooling_type=pooling, verbose=False)

    def ready(self) -> bool:
        return self._llm is not None

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def _require(self) -> Any:
        if self._llm is None:
            raise EngineNotReady("model not loaded")
        return self._llm

    # -- tokens ------------------------------------------------------------------
    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        llm = self._require()

        def run() -> list[int]:
            return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def vocab_size(self) -> int:
        return int(self._require().n_vocab())

    # -- embeddings --------------------------------------------------------------
    async def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        """One L2-normalised vector per input (token ids, each within the context)."""
        llm = self._require()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._embed_sync, llm, [list(ids) for ids in inputs])

    def _embed_sync(self, llm: Any, inputs: list[list[int]]) -> list[list[float]]:
        import llama_cpp

        out: list[list[float]] = []
        try:
            for ids in inputs:
                llm._batch.reset()
                llm._ctx.kv_cache_clear()
                llm._batch.add_sequence(ids, 0, True)  # every token an output: pooled
                llm._ctx.decode(llm._batch)
                row = llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)
                out.append(normalised(row[: self.dimensions]))
        except Exception as exc:
            raise EngineError(f"embedding failed: {exc}") from exc
        finally:
            llm._batch.reset()
            llm._ctx.kv_cache_clear()
        return out

