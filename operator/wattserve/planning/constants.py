"""Every constant of the placement model, named, with its source.

docs/placement.md explains each one; the efficiency and throughput figures can be
overridden per ServingPool (``spec.tuning``). "Calibrated" means fitted to a
measurement on this project's machines (see ../shared/reference/figures.md).
"""

from __future__ import annotations

from typing import Final

from wattserve.api.types import Quantization

GIB: Final = 1024**3

# Bytes of weights per parameter. Block formats from llama.cpp's ggml-common.h (bytes per
# block of weights): Q8_0 34/32, Q6_K 210/256, Q5_0 22/32, Q4_1 20/32, Q4_0 18/32,
# IQ4_XS 136/256, MXFP4 17/32 (32 FP4 values and one 8-bit shared exponent, as in the OCP
# MX spec). The K-quant mixes keep some tensors at a higher type; their averages are the
# bits per weight llama.cpp's tools/quantize/README.md reports for Llama 2 7B: Q5_K_M
# ~5.69 (README: 5.68), Q4_K_M ~4.89 (README: 4.84), Q3_K_M 3.91, Q2_K 3.35.
# INT4 (AWQ, GPTQ: 4-bit weights in groups of 128 with a 16-bit scale and a 4-bit zero
# point each, the libraries' default group size): 4 + 20/128 = 4.16 bits.
BYTES_PER_PARAMETER: Final[dict[Quantization, float]] = {
    Quantization.FP32: 4.0,
    Quantization.BF16: 2.0,
    Quantization.FP16: 2.0,
    Quantization.FP8: 1.0,
    Quantization.INT8: 1.0,
    Quantization.INT4: (4 + 20 / 128) / 8,
    Quantization.MXFP4: 17 / 32,
    Quantization.Q8_0: 34 / 32,
    Quantization.Q6_K: 210 / 256,
    Quantization.Q5_K_M: 5.69 / 8,
    Quantization.Q5_0: 22 / 32,
    Quantization.Q4_K_M: 4.89 / 8,
    Quantization.Q4_1: 20 / 32,
    Quantization.Q4_0: 18 / 32,
    Quantization.IQ4_XS: 136 / 256,
    Quantization.Q3_K_M: 3.91 / 8,
    Quantization.Q2_K: 3.35 / 8,
}

# Which weight formats each engine serves. vLLM loads GGUF files too, but its GGUF
# path is documented as experimental and slower; VLLM_GGUF_EFFICIENCY discounts it.
# INT4 checkpoints (AWQ, GPTQ) are vLLM's (safetensors, Marlin kernels); MXFP4 is served
# natively by vLLM (gpt-oss) and by llama.cpp as a GGUF type.
GGUF_FORMATS: Final = frozenset({
    Quantization.Q8_0, Quantization.Q6_K, Quantization.Q5_K_M, Quantization.Q5_0,
    Quantization.Q4_K_M, Quantization.Q4_1, Quantization.Q4_0, Quantization.IQ4_XS,
    Quantization.Q3_K_M, Quantization.Q2_K,
})
LLAMACPP_FORMATS: Final = GGUF_FORMATS | {Quantization.FP32, Quantization.FP16,
                                          Quantization.BF16, Quantization.MXFP4}
VLLM_FORMATS: Final = frozenset({
    Quantization.FP32, Quantization.BF16, Quantization.FP16, Quantization.FP8,
    Quantization.INT8, Quantization.INT4, Quantization.MXFP4,
}) | GGUF_FORMATS
VLLM_GGUF_EFFICIENCY: Final = 0.6

# INT8 tensor cores (Turing, Ampere, Ada, Hopper) double dense throughput over BF16. FP8
# compute is the pool's own figure (accelerator.peakTFLOPSFP8: Ada, Hopper, Blackwell);
# without it vLLM runs FP8 weights as W8A16 at the BF16 peak. INT4 (W4A16) and MXFP4
# weights are dequantized to 16 bits for the matmuls on Ada and Hopper (no FP4 tensor
# cores before Blackwell): no compute speedup, only fewer bytes to read.
LOW_PRECISION_COMPUTE_SPEEDUP: Final[dict[Quantization, float]] = {
    Quantization.INT8: 2.0,
}

# --- KV cache ---------------------------------------------------------------------------
KV_BYTES_PER_ELEMENT: Final = 2  # fp16/bf16 KV cache: the default of vLLM and llama.cpp
# Without architecture hints: hidden size ≈ ASPECT_RATIO × layers and
# parameters ≈ 12 × layers × hidden² (the standard transformer count), so
# layers = (parameters / (12 × ASPECT_RATIO²))^(1/3). Llama-3.1-8B: 4096/32 = 128.
DEFAULT_ASPECT_RATIO: Final = 128.0
# Grouped-query attention: KV heads / attention heads. Llama 3: 8/32 (8B), 8/64 (70B).
DEFAULT_GQA_RATIO: Final = 0.25

# --- GPU (vLLM) -------------------------------------------------------------------------
GPU_MEMORY_UTILIZATION: Final = 0.90  # vLLM's default gpu_memory_utilization
GPU_RUNTIME_OVERHEAD_GIB: Final = 1.5  # per GPU: CUDA context, activations, CUDA graphs
GPU_DECODE_EFFICIENCY: Final = 0.70  # share of peak bandwidth; vLLM on A100 reached ~77 %
GPU_PREFILL_EFFICIENCY: Final = 0.50  # model FLOPs utilisation of prefill
GPU_STEP_OVERHEAD_S: Final = 0.001  # scheduling + sampling per decode step
GPU_MAX_BATCH: Final = 256  # vLLM's default max_num_seqs
TENSOR_PARALLEL_OPTIONS: Final = (1, 2, 4, 8)
# Communication cost of tensor parallelism (all-reduce per layer) as an efficiency.
TENSOR_PARALLEL_EFFICIENCY: Final[dict[int, float]] = {1: 1.0, 2: 0.90, 4: 0.85, 8: 0.80}
# Share of the dynamic power range a GPU draws in memory-bound decode at low batch;
# the rest grows with compute utilisation.
GPU_DECODE_POWER_FRACTION: Final = 0.6

# --- CPU (llama.cpp) --------------------------------------------------------------------
CPU_RUNTIME_OVERHEAD_GIB: Final = 0.5
CPU_DECODE_EFFICIENCY: Final = 0.70  # share of reachable bandwidth in decode
CPU_PER_CORE_BANDWIDTH_GBPS: Final = 8.0  # what one core can stream; caps small replicas
# Calibrated: SmolLM2-135M Q4_1 decodes at 100–112 tok/s on 2 Sapphire Rapids vCPUs
# (2 × 135e6 FLOPs × 106 tok/s / 2 cores ≈ 14 GFLOP/s per core).
CPU_DECODE_GFLOPS_PER_CORE: Final = 14.0
# Calibrated: prefill of 128 tokens at 615 tok/s on 2 vCPUs (≈ 83 GFLOP/s per core).
CPU_PREFILL_GFLOPS_PER_CORE: Final = 80.0
CPU_THREAD_OPTIONS: Final = (1, 2, 4, 8, 16, 32, 64)
CPU_NODE_RESERVED_CORES: Final = 1  # kubelet and system daemons: threads ≤ cores − 1
CPU_MAX_CONCURRENCY: Final = 1  # llama-cpp-python serves one sequence at a time

# --- queueing and latency percentiles ----------------------------------------------------
SERVICE_P95_OVER_MEAN: Final = 1.25  # spread of output lengths around the expected one
QUEUE_WAIT_P95_OVER_MEAN: Final = 3.0  # exponential tail: ln(20) ≈ 3.0
SERVICE_SCV: Final = 0.5  # squared coefficient of variation of service time (Kingman)

# --- start-up ---------------------------------------------------------------------------
COLD_START_SECONDS: Final[dict[str, float]] = {
    "llamacpp": 15.0,  # load a GGUF from the image or a volume
    "vllm": 180.0,  # AIBrix reports 2–3 minutes for new GPU pods
}

ENGINE_LLAMACPP: Final = "llamacpp"
ENGINE_VLLM: Final = "vllm"
