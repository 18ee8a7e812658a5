"""What both embedding engines share: they do not generate, and their vectors are
L2-normalised (as OpenAI's and vLLM's are)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

from wattserve_serving.engines.base import (
    ChatPrompt,
    Chunk,
    EngineError,
    PreparedPrompt,
    SamplingParams,
    Unsupported,
)

NOT_GENERATIVE = "this model serves embeddings: use /v1/embeddings"


class EmbeddingOnly:
    """Chat and generation answer 400 (``Unsupported``) on an embedding model."""

    task = "embedding"

    async def render_chat(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        raise Unsupported(NOT_GENERATIVE)

    async def generate(self, prompt: PreparedPrompt, params: SamplingParams
                       ) -> AsyncIterator[Chunk]:
        raise Unsupported(NOT_GENERATIVE)
        yield  # pragma: no cover - makes this an async generator


def normalised(vector: Sequence[float]) -> list[float]:
    values = [float(v) for v in vector]
    norm = math.sqrt(math.fsum(v * v for v in values))
    if not math.isfinite(norm) or norm == 0.0:
        raise EngineError("the model returned a zero or non-finite embedding")
    return [v / norm for v in values]
