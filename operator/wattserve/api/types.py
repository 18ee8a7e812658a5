"""Typed, frozen views of the wattserve.dev/v1alpha1 custom resources.

These mirror ``crds/`` field for field (a test keeps them in agreement). Decimals that
the spec carries as strings are parsed to ``float`` here; counts are ``int``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Quantization(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"  # 4-bit weights, 16-bit activations: AWQ, GPTQ (vLLM)
    MXFP4 = "mxfp4"  # OCP microscaling FP4 (gpt-oss): vLLM, and llama.cpp as GGUF
    Q8_0 = "q8_0"
    Q6_K = "q6_k"
    Q5_K_M = "q5_k_m"
    Q5_0 = "q5_0"
    Q4_K_M = "q4_k_m"
    Q4_1 = "q4_1"
    Q4_0 = "q4_0"
    IQ4_XS = "iq4_xs"
    Q3_K_M = "q3_k_m"
    Q2_K = "q2_k"


class Task(StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"


class Objective(StrEnum):
    COST = "cost"
    ENERGY = "energy"
    CARBON = "carbon"
    BALANCED = "balanced"


class EngineChoice(StrEnum):
    AUTO = "auto"
    LLAMACPP = "llamacpp"
    VLLM = "vllm"


class Backend(StrEnum):
    DEPLOYMENT = "deployment"
    RAYSERVICE = "rayservice"


@dataclass(frozen=True)
class Architecture:
    """Optional hints for the KV-cache estimate."""

    layers: int | None = None
    hidden_size: int | None = None
    attention_heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None  # config.json's head_dim where it is not hidden / heads


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str
    parameters: int
    quantization: Quantization = Quantization.BF16
    context_length: int = 4096
    task: Task = Task.CHAT
    architecture: Architecture = field(default_factory=Architecture)
    # Mixture of experts: the parameters one token runs through (shared layers plus the
    # experts it is routed to). None: a dense model, every parameter is active.
    active_parameters: int | None = None

    @property
    def active(self) -> int:
        """Parameters each token computes with (all of them for a dense model)."""
        return self.parameters if self.active_parameters is None else self.active_parameters


@dataclass(frozen=True)
class SLO:
    latency_p95_ms: int
    ttft_p95_ms: int | None = None


@dataclass(frozen=True)
class Budget:
    max_joules_per_token: float | None = None
    max_usd_per_million_tokens: float | None = None
    max_usd_per_hour: float | None = None


@dataclass(frozen=True)
class ExpectedLoad:
    requests_per_second: float = 1.0
    prompt_tokens: int = 256
    output_tokens: int = 128


@dataclass(frozen=True)
class PlacementPrefs:
    pool: str | None = None
    engine: EngineChoice = EngineChoice.AUTO
    allow_gpu: bool = True


@dataclass(frozen=True)
class Scaling:
    min_replicas: int = 1
    max_replicas: int = 10
    target_utilization_percent: int = 70
    scale_up_delay_seconds: int = 0
    scale_down_delay_seconds: int = 300
    idle_timeout_seconds: int | None = None  # minReplicas 0: None = from the cost of waking


@dataclass(frozen=True)
class ModelDeploymentSpec:
    model: ModelSpec
    slo: SLO
    objective: Objective = Objective.COST
    budget: Budget = field(default_factory=Budget)
    expected_load: ExpectedLoad = field(default_factory=ExpectedLoad)
    placement: PlacementPrefs = field(default_factory=PlacementPrefs)
    scaling: Scaling = field(default_factory=Scaling)
    backend: Backend = Backend.DEPLOYMENT
    priority: int = 0  # who gets a full pool first: higher priority, then older, then name


@dataclass(frozen=True)
class ModelDeployment:
    name: str
    namespace: str
    spec: ModelDeploymentSpec
    generation: int = 0
    uid: str = ""


@dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str = "Equal"
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None

    def to_k8s(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {"operator": self.operator}
        if self.key is not None:
            out["key"] = self.key
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        if self.toleration_seconds is not None:
            out["tolerationSeconds"] = self.toleration_seconds
        return out


@dataclass(frozen=True)
class Accelerator:
    type: str
    count: int
    memory_gib: float
    memory_bandwidth_gbps: float
    peak_tflops: float
    resource_name: str = "nvidia.com/gpu"
    peak_tflops_fp8: float | None = None  # dense FP8; None: no FP8 compute (W8A16 in vLLM)


@dataclass(frozen=True)
class NodeShape:
    cpu: int
    memory_gib: float
    memory_bandwidth_gbps: float


@dataclass(frozen=True)
class Power:
    idle_watts: float
    max_watts: float


@dataclass(frozen=True)
class Tuning:
    """Per-pool overrides of the planning constants (None = documented default)."""

    decode_efficiency: float | None = None
    prefill_efficiency: float | None = None
    cpu_decode_gflops_per_core: float | None = None
    cpu_prefill_gflops_per_core: float | None = None
    cold_start_seconds: float | None = None
    # CPU pools: millicores a llama.cpp thread requests (None = 1000, Guaranteed QoS). Below
    # 1000 a replica is Burstable (limit = its threads), so a small node holds more of them.
    cpu_millis_per_thread: int | None = None


@dataclass(frozen=True)
class ServingPoolSpec:
    node: NodeShape
    usd_per_node_hour: float
    power: Power
    grams_co2_per_kwh: float
    max_nodes: int = 10
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    accelerator: Accelerator | None = None
    tuning: Tuning = field(default_factory=Tuning)

    @property
    def is_gpu(self) -> bool:
        return self.accelerator is not None


@dataclass(frozen=True)
class ServingPool:
    name: str
    spec: ServingPoolSpec
    generation: int = 0
