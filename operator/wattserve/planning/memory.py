"""Memory model: weights, KV cache and runtime overhead of one replica."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from wattserve.api.types import ModelSpec
from wattserve.planning import constants as c


@dataclass(frozen=True)
class ModelShape:
    """Transformer dimensions used by the KV-cache estimate."""

    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_size: int | None = None  # the hint; None: hidden_size / attention_heads

    @property
    def head_dim(self) -> float:
        if self.head_size is not None:
            return float(self.head_size)
        return self.hidden_size / self.attention_heads


def weight_bytes(model: ModelSpec) -> float:
    """Bytes of weights: parameters × bytes per parameter of the quantization."""
    return model.parameters * c.BYTES_PER_PARAMETER[model.quantization]


@lru_cache(maxsize=4096)
def model_shape(model: ModelSpec) -> ModelShape:
    """Architecture hints where given, else the documented estimate from the size (the
    active parameters of a mixture of experts: its attention is that of a dense model of
    about that size, e.g. Mixtral 8x7B's is Mistral 7B's)."""
    arch = model.architecture
    size = model.active
    layers = arch.layers
    hidden = arch.hidden_size
    if layers is None and hidden is None:
        layers = max(1, round((size / (12 * c.DEFAULT_ASPECT_RATIO**2)) ** (1 / 3)))
    if hidden is None:
        assert layers is not None
        hidden = max(64, round(math.sqrt(size / (12 * layers))))
    if layers is None:
        layers = max(1, round(size / (12 * hidden * hidden)))
    heads = arch.attention_heads or max(1, round(hidden / 128))
    kv_heads = arch.kv_heads or max(1, round(heads * c.DEFAULT_GQA_RATIO))
    return ModelShape(layers=layers, hidden_size=hidden, attention_heads=heads,
                      kv_heads=min(kv_heads, heads), head_size=arch.head_dim)


# Memo of kv_bytes_per_token by the only fields it reads (not the model's name or source).
_KV_BYTES: dict[tuple[int, object], float] = {}


def kv_bytes_per_token(model: ModelSpec) -> float:
    """K and V for every layer: 2 × layers × kv_heads × head_dim × bytes per element."""
    key = (model.active, model.architecture)
    found = _KV_BYTES.get(key)
    if found is None:
        if len(_KV_BYTES) >= 4096:
            _KV_BYTES.clear()
        found = _KV_BYTES[key] = _kv_bytes_per_token(model)
    return found


def _kv_bytes_per_token(model: ModelSpec) -> float:
    shape = model_shape(model)
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * c.KV_BYTES_PER_ELEMENT


@dataclass(frozen=True)
class MemoryFit:
    """How a replica uses its memory; ``max_sequences`` is 0 when it does not fit."""

    weights_gib: float
    kv_per_sequence_gib: float
    overhead_gib: float
    capacity_gib: float
    max_sequences: int

    @property
    def fits(self) -> bool:
        return self.max_sequences >= 1

    @property
    def needed_gib(self) -> float:
        """Memory for the weights, overhead and one full-context sequence."""
        return self.weights_gib + self.overhead_gib + self.kv_per_sequence_gib


def gpu_fit(model: ModelSpec, gpu_memory_gib: float, tensor_parallel: int,
            typical_sequence_tokens: int) -> MemoryFit:
    """Fit on ``tensor_parallel`` GPUs; KV for one full context must fit, the batch
    is then as many typical sequences (prompt + output) as the rest holds (paged KV)."""
    capacity = gpu_memory_gib * tensor_parallel * c.GPU_MEMORY_UTILIZATION
    weights = weight_bytes(model) / c.GIB
    overhead = c.GPU_RUNTIME_OVERHEAD_GIB * tensor_parallel
    kv_token = kv_bytes_per_token(model) / c.GIB
    full = kv_token * model.context_length
    free = capacity - weights - overhead
    if free < full:
        sequences = 0
    else:
        typical = kv_token * max(1, min(typical_sequence_tokens, model.context_length))
        sequences = min(c.GPU_MAX_BATCH, max(1, int(free // typical)))
    return MemoryFit(weights_gib=weights, kv_per_sequence_gib=full, overhead_gib=overhead,
                     capacity_gib=capacity, max_sequences=sequences)


def cpu_fit(model: ModelSpec, available_gib: float) -> MemoryFit:
    """Fit in node RAM: weights, overhead and one full-context KV cache (llama.cpp
    allocates the whole context up front)."""
    weights = weight_bytes(model) / c.GIB
    full = kv_bytes_per_token(model) / c.GIB * model.context_length
    overhead = c.CPU_RUNTIME_OVERHEAD_GIB
    fits = weights + full + overhead <= available_gib
    return MemoryFit(weights_gib=weights, kv_per_sequence_gib=full, overhead_gib=overhead,
                     capacity_gib=available_gib, max_sequences=c.CPU_MAX_CONCURRENCY if fits else 0)
