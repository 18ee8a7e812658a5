"""vLLM as an embedding model (``spec.model.task: embedding`` on a GPU pool): vLLM's pooling
runner (``runner="pooling"``), one ``encode`` per input with ``PoolingParams(task="embed")``,
all inputs of a request in flight at once so vLLM batches them. The model's own pooler
decides the pooling (from its sentence-transformers or model config), as
``vllm serve --runner pooling`` does; vectors are L2-normalised here too (vLLM's embed
pooler already normalises by default: a no-op then). It does not generate text.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from wattserve_serving.engines.base import EngineError, EngineNotReady
from wattserve_serving.engines.embedding import EmbeddingOnly, normalised


class VLLMEmbedder(EmbeddingOnly):
    engine_name = "vllm"

    def __init__(self, model: str, tensor_parallel_size: int = 1,
                 context_length: int | None = None) -> None:
        self.model = model
        self.tensor_parallel_size = max(1, tensor_parallel_size)
        self.context_length = context_length or 0
        self.max_concurrency = 256  # vLLM batches the pooling requests itself
        self.dimensions = 0  # known once loaded
        self._engine: Any = None
        self._tokenizer: Any = None
        self._pooling: Any = None  # vLLM's PoolingParams class

    async def load(self) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise EngineError("vLLM is not installed (pip install 'wattserve[gpu]')") from exc
        kwargs: dict[str, Any] = {"model": self.model, "runner": "pooling",
                                  "tensor_parallel_size": self.tensor_parallel_size}
        if self.context_length:
            kwargs["max_model_len"] = self.context_length
        engine = vllm.AsyncLLMEngine.from_engine_args(vllm.AsyncEngineArgs(**kwargs))
        tokenizer = engine.get_tokenizer()
        self._tokenizer = await tokenizer if asyncio.iscoroutine(tokenizer) else tokenizer
        config = engine.model_config
        if isinstance(config.max_model_len, int) and config.max_model_len > 0:
            self.context_length = config.max_model_len
        self.dimensions = int(config.embedding_size)  # after any projection (Dense) head
        self._pooling = vllm.PoolingParams
        self._engine = engine

    def ready(self) -> bool:
        return self._engine is not None

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()

    def _require(self) -> Any:
        if self._engine is None:
            raise EngineNotReady("model not loaded")
        return self._engine

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self._require()
        return list(self._tokenizer.encode(text, add_special_tokens=add_bos))

    def vocab_size(self) -> int:
        self._require()
        return len(self._tokenizer)

    async def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        engine = self._require()
        return list(await asyncio.gather(*(self._one(engine, list(ids)) for ids in inputs)))

    async def _one(self, engine: Any, ids: list[int]) -> list[float]:
        request_id = f"embd-{uuid.uuid4().hex}"
        final: Any = None
        try:
            async for output in engine.encode({"prompt_token_ids": ids},
                                              self._pooling(task="embed"), request_id):
                final = output
        except asyncio.CancelledError:
            await engine.abort(request_id)
            raise
        except Exception as exc:
            raise EngineError(f"embedding failed: {exc}") from exc
        if final is None or not final.finished:
            raise EngineError("vLLM ended an embedding request without its output")
        return normalised(final.outputs.data.tolist())
