"""Engine backends; each is imported only when selected."""

from __future__ import annotations

from wattserve_serving.config import ServeConfig
from wattserve_serving.engines.base import (
    Chunk,
    Engine,
    EngineError,
    EngineNotReady,
    PreparedPrompt,
    SamplingParams,
)

__all__ = [
    "Chunk",
    "Engine",
    "EngineError",
    "EngineNotReady",
    "PreparedPrompt",
    "SamplingParams",
    "make_engine",
]


def make_engine(config: ServeConfig) -> Engine:
    """Construct (not load) the engine named by `config.engine` (an embedder for
    ``config.task == "embedding"``)."""
    if config.engine == "llamacpp" and config.task == "embedding":
        from wattserve_serving.engines.llamacpp_embed import LlamaCppEmbedder

        return LlamaCppEmbedder(model_path=config.model, threads=config.threads,
                                context_length=config.context_length)
    if config.engine == "llamacpp":
        from wattserve_serving.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(
            model_path=config.model,
            threads=config.threads,
            context_length=config.context_length,
            parallel=config.parallel,
        )
    if config.engine == "vllm" and config.task == "embedding":
        from wattserve_serving.engines.vllm_embed import VLLMEmbedder

        return VLLMEmbedder(model=config.model, tensor_parallel_size=config.gpu_count,
                            context_length=config.context_length)
    if config.engine == "vllm":
        from wattserve_serving.engines.vllm import VLLMEngine

        return VLLMEngine(
            model=config.model,
            tensor_parallel_size=config.gpu_count,
            context_length=config.context_length,
        )
    raise ValueError(f"unknown engine {config.engine!r}")
