"""Parse ModelDeployment and ServingPool objects (dicts) into frozen types.

Every rule the CRD schema or its CEL rules enforce is enforced here too, with the same
field paths, so `wattserve plan` rejects exactly what the API server rejects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from wattserve import contract
from wattserve.api.errors import SpecError
from wattserve.api.labels import (
    extended_resource_problem,
    is_dns_subdomain,
    label_key_problem,
    label_value_problem,
)
from wattserve.api.quantities import parse_parameter_count
from wattserve.api.reader import Fields
from wattserve.api.references import OCI_SCHEME, OCI_SOURCE_PATTERN, oci_reference_problem
from wattserve.api.types import (
    SLO,
    Accelerator,
    Architecture,
    Backend,
    Budget,
    EngineChoice,
    ExpectedLoad,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelSpec,
    NodeShape,
    Objective,
    PlacementPrefs,
    Power,
    Quantization,
    Scaling,
    ServingPool,
    ServingPoolSpec,
    Task,
    Toleration,
    Tuning,
)

API_VERSION: Final = contract.API_VERSION
# Path components of [A-Za-z0-9._-] not starting with "." or "-": no "..", no shell or
# Kubernetes "$(VAR)" expansion, nothing the fetcher would refuse after placement. oci://
# sources follow the image-reference grammar (api/references.py). The CRD has the same.
PATH_SOURCE_PATTERN: Final = (
    r"(hf|gguf|pvc)://(/?[A-Za-z0-9_][A-Za-z0-9._-]*)(/[A-Za-z0-9_][A-Za-z0-9._-]*)*"
)
SOURCE_PATTERN: Final = f"^({PATH_SOURCE_PATTERN}|{OCI_SOURCE_PATTERN})$"
SOURCE_MAX_LENGTH: Final = 512
S3_UNSUPPORTED: Final = (
    "s3:// sources are not supported yet (the serving images have no S3 client); "
    "use hf://, pvc://, gguf:// or oci://"
)
# Object names as the API server takes them for custom resources: a DNS-1123 subdomain
# (dots allowed: `llama-3.1-8b`), at most 253 characters; children whose kind needs a
# stricter name get a derived one (render/meta.py). Namespaces are DNS-1123 labels.
LABEL_PATTERN: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
NAME_PATTERN: Final = rf"^{LABEL_PATTERN}(\.{LABEL_PATTERN})*$"
NAME_MAX: Final = 253
NAMESPACE_MAX: Final = 63
MAX_TOKENS: Final = 10_000_000  # expectedLoad lengths, as contextLength's maximum
MAX_ACCELERATOR_COUNT: Final = 64  # a node's GPUs: accelerator.count's bound (as the CRD's)
MAX_POOL_LABELS: Final = 64  # a pool's nodeSelector labels and tolerations (as the CRD's)
# The CRD's pattern for efficiencies: (0, 1] without leading zeros.
EFFICIENCY_PATTERN: Final = r"^(0\.[0-9]*[1-9][0-9]*|1(\.0+)?)$"
PRIORITY_MIN: Final = -1000
PRIORITY_MAX: Final = 1000
_TOP: Final = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


def _object(obj: object, kind: str) -> tuple[Fields, str, str, int, str]:
    top = Fields(obj, "", allowed=_TOP)
    api_version = top.string("apiVersion", default=API_VERSION)
    if api_version != API_VERSION:
        raise SpecError("apiVersion", f"must be {API_VERSION}, got {api_version!r}")
    got_kind = top.string("kind", default=kind)
    if got_kind != kind:
        raise SpecError("kind", f"must be {kind}, got {got_kind!r}")
    meta = Fields(top.raw("metadata"), "metadata", allowed=frozenset(), strict=False)
    name = meta.req_string("name", pattern=NAME_PATTERN, max_length=NAME_MAX)
    namespace = meta.string("namespace", default="default", pattern=f"^{LABEL_PATTERN}$",
                            max_length=NAMESPACE_MAX) or "default"
    generation = meta.int_default("generation", 0)
    uid = meta.string("uid", default="") or ""
    return top, name, namespace, generation, uid


def parse_model_deployment(obj: object) -> ModelDeployment:
    """Parse a ModelDeployment object; raises :class:`SpecError` naming the field."""
    top, name, namespace, generation, uid = _object(obj, "ModelDeployment")
    spec = top.child(
        "spec",
        _keys("model", "slo", "objective", "budget", "expectedLoad", "placement", "scaling",
              "backend", "priority"),
        required=True,
    )
    model, load = _model(spec), _load(spec)
    if load.prompt_tokens + load.output_tokens > model.context_length:  # the CRD's CEL rule
        raise SpecError("spec.expectedLoad.promptTokens",
                        f"promptTokens + outputTokens must fit in model.contextLength "
                        f"({load.prompt_tokens} + {load.output_tokens} > "
                        f"{model.context_length})")
    return ModelDeployment(
        name=name,
        namespace=namespace,
        generation=generation,
        uid=uid,
        spec=ModelDeploymentSpec(
            model=model,
            slo=_slo(spec),
            objective=spec.enum("objective", Objective, Objective.COST),
            budget=_budget(spec),
            expected_load=load,
            placement=_placement(spec),
            scaling=_scaling(spec),
            backend=spec.enum("backend", Backend, Backend.DEPLOYMENT),
            priority=spec.int_default("priority", 0, minimum=PRIORITY_MIN,
                                      maximum=PRIORITY_MAX),
        ),
    )


def _model(spec: Fields) -> ModelSpec:
    model = spec.child(
        "model",
        _keys("name", "source", "parameters", "activeParameters", "quantization",
              "contextLength", "task", "architecture"),
        required=True,
    )
    arch = model.child("architecture", _keys("layers", "hiddenSize", "attentionHeads", "kvHeads",
                                             "headDim"))
    architecture = Architecture(
        layers=arch.integer("layers", minimum=1, maximum=1000),
        hidden_size=arch.integer("hiddenSize", minimum=1),
        attention_heads=arch.integer("attentionHeads", minimum=1),
        kv_heads=arch.integer("kvHeads", minimum=1),
        head_dim=arch.integer("headDim", minimum=1, maximum=65536),
    )
    if (architecture.kv_heads is not None and architecture.attention_heads is not None
            and architecture.kv_heads > architecture.attention_heads):
        raise SpecError(arch.at("kvHeads"), "must be <= attentionHeads")
    parameters = model.req_string("parameters")
    raw_source = model.raw("source")
    if isinstance(raw_source, str) and raw_source.startswith("s3://"):
        raise SpecError(model.at("source"), S3_UNSUPPORTED)
    total = parse_parameter_count(parameters, model.at("parameters"))
    active = None
    if model.raw("activeParameters") is not None:
        active = parse_parameter_count(model.raw("activeParameters"),
                                       model.at("activeParameters"))
        if active > total:
            raise SpecError(model.at("activeParameters"),
                            f"must be <= parameters ({parameters}), got "
                            f"{model.raw('activeParameters')!r}")
    return ModelSpec(
        name=model.req_string("name", max_length=253),
        source=_source(model),
        parameters=total,
        active_parameters=active,
        quantization=model.enum("quantization", Quantization, Quantization.BF16),
        context_length=model.int_default("contextLength", 4096, minimum=128, maximum=MAX_TOKENS),
        task=model.enum("task", Task, Task.CHAT),
        architecture=architecture,
    )


def _source(model: Fields) -> str:
    raw = model.raw("source")
    if isinstance(raw, str) and raw.startswith(OCI_SCHEME):
        problem = oci_reference_problem(raw)  # the precise message before the generic one
        if problem is not None:
            raise SpecError(model.at("source"), problem)
    source = model.req_string("source", pattern=SOURCE_PATTERN, max_length=SOURCE_MAX_LENGTH)
    if "\n" in source:  # the CRD's pattern is anchored at both ends: one line only
        raise SpecError(model.at("source"), "must be one line")
    if source.startswith("pvc://"):
        problem = pvc_claim_problem(source.removeprefix("pvc://").partition("/")[0])
        if problem is not None:
            raise SpecError(model.at("source"), problem)
    return source


def pvc_claim_problem(claim: str) -> str | None:
    """Why the claim of ``pvc://<claim>/<path>`` is not a PersistentVolumeClaim name."""
    if is_dns_subdomain(claim):
        return None
    return (f"pvc://<claim>/<path>: {claim!r} is not a PersistentVolumeClaim name (a DNS "
            "subdomain: lower-case alphanumerics, '-' and '.', at most 253 characters)")


def _slo(spec: Fields) -> SLO:
    slo = spec.child("slo", _keys("latencyP95Ms", "timeToFirstTokenP95Ms"), required=True)
    latency = slo.req_integer("latencyP95Ms", minimum=1)
    ttft = slo.integer("timeToFirstTokenP95Ms", minimum=1)
    if ttft is not None and ttft > latency:
        raise SpecError(slo.at("timeToFirstTokenP95Ms"), "must be <= latencyP95Ms")
    return SLO(latency_p95_ms=latency, ttft_p95_ms=ttft)


def _budget(spec: Fields) -> Budget:
    budget = spec.child("budget", _keys("maxJoulesPerToken", "maxUSDPerMillionTokens",
                                        "maxUSDPerHour"))
    return Budget(
        max_joules_per_token=budget.decimal("maxJoulesPerToken", positive=True),
        max_usd_per_million_tokens=budget.decimal("maxUSDPerMillionTokens", positive=True),
        max_usd_per_hour=budget.decimal("maxUSDPerHour", positive=True),
    )


def _load(spec: Fields) -> ExpectedLoad:
    load = spec.child("expectedLoad", _keys("requestsPerSecond", "promptTokens", "outputTokens"))
    rps = load.decimal("requestsPerSecond")
    return ExpectedLoad(
        requests_per_second=1.0 if rps is None else rps,
        prompt_tokens=load.int_default("promptTokens", 256, minimum=1, maximum=MAX_TOKENS),
        output_tokens=load.int_default("outputTokens", 128, minimum=1, maximum=MAX_TOKENS),
    )


def _placement(spec: Fields) -> PlacementPrefs:
    placement = spec.child("placement", _keys("pool", "engine", "allowGPU"))
    return PlacementPrefs(
        pool=placement.string("pool", pattern=NAME_PATTERN, max_length=NAME_MAX),
        engine=placement.enum("engine", EngineChoice, EngineChoice.AUTO),
        allow_gpu=placement.boolean("allowGPU", True),
    )


def _scaling(spec: Fields) -> Scaling:
    scaling = spec.child("scaling", _keys("minReplicas", "maxReplicas", "targetUtilizationPercent",
                                          "scaleUpDelaySeconds", "scaleDownDelaySeconds",
                                          "idleTimeoutSeconds"))
    result = Scaling(
        min_replicas=scaling.int_default("minReplicas", 1, minimum=0, maximum=1000),
        max_replicas=scaling.int_default("maxReplicas", 10, minimum=1, maximum=1000),
        target_utilization_percent=scaling.int_default("targetUtilizationPercent", 70,
                                                       minimum=1, maximum=100),
        scale_up_delay_seconds=scaling.int_default("scaleUpDelaySeconds", 0, minimum=0,
                                                   maximum=3600),
        scale_down_delay_seconds=scaling.int_default("scaleDownDelaySeconds", 300, minimum=0,
                                                     maximum=86400),
        idle_timeout_seconds=scaling.integer("idleTimeoutSeconds", minimum=30,
                                             maximum=604800),
    )
    if result.min_replicas > result.max_replicas:
        raise SpecError(scaling.at("minReplicas"),
                        f"must be <= maxReplicas ({result.min_replicas} > {result.max_replicas})")
    return result


def parse_serving_pool(obj: object) -> ServingPool:
    """Parse a ServingPool object; raises :class:`SpecError` naming the field."""
    top, name, _, generation, _ = _object(obj, "ServingPool")
    spec = top.child(
        "spec",
        _keys("nodeSelector", "tolerations", "accelerator", "node", "pricing", "power", "carbon",
              "maxNodes", "tuning"),
        required=True,
    )
    node = spec.child("node", _keys("cpu", "memoryGiB", "memoryBandwidthGBps"), required=True)
    pricing = spec.child("pricing", _keys("usdPerNodeHour"), required=True)
    power = spec.child("power", _keys("idleWatts", "maxWatts"), required=True)
    carbon = spec.child("carbon", _keys("gramsCO2PerKWh"), required=True)
    idle = power.req_integer("idleWatts", minimum=0)
    peak = power.req_integer("maxWatts", minimum=1)
    if idle > peak:
        raise SpecError(power.at("idleWatts"), f"must be <= maxWatts ({idle} > {peak})")
    return ServingPool(
        name=name,
        generation=generation,
        spec=ServingPoolSpec(
            node=NodeShape(
                cpu=node.req_integer("cpu", minimum=1),
                memory_gib=float(node.req_integer("memoryGiB", minimum=1)),
                memory_bandwidth_gbps=float(node.req_integer("memoryBandwidthGBps", minimum=1)),
            ),
            usd_per_node_hour=pricing.req_decimal("usdPerNodeHour"),
            power=Power(idle_watts=float(idle), max_watts=float(peak)),
            grams_co2_per_kwh=float(carbon.req_integer("gramsCO2PerKWh", minimum=0)),
            max_nodes=spec.int_default("maxNodes", 10, minimum=1, maximum=100_000),
            node_selector=_node_selector(spec),
            tolerations=_tolerations(spec),
            accelerator=_accelerator(spec),
            tuning=_tuning(spec),
        ),
    )


def _node_selector(spec: Fields) -> tuple[tuple[str, str], ...]:
    raw = spec.raw("nodeSelector")
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise SpecError(spec.at("nodeSelector"), "must be a mapping of label to value")
    if len(raw) > MAX_POOL_LABELS:
        raise SpecError(spec.at("nodeSelector"), f"must have at most {MAX_POOL_LABELS} labels")
    pairs = []
    for key, value in raw.items():
        why = label_key_problem(key) if isinstance(key, str) else "must be a string"
        if why is not None:
            raise SpecError(spec.at(f"nodeSelector.{key}"), f"label key: {why}")
        if not isinstance(value, str):
            raise SpecError(spec.at(f"nodeSelector.{key}"), "must be a string")
        problem = label_value_problem(value)
        if problem is not None:
            raise SpecError(spec.at(f"nodeSelector.{key}"), f"label value {value!r} {problem}")
        pairs.append((key, value))
    return tuple(sorted(pairs))


def _tolerations(spec: Fields) -> tuple[Toleration, ...]:
    raw = spec.raw("tolerations")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError(spec.at("tolerations"), "must be a list")
    if len(raw) > MAX_POOL_LABELS:
        raise SpecError(spec.at("tolerations"), f"must have at most {MAX_POOL_LABELS} items")
    out = []
    for index, item in enumerate(raw):
        if item is None:
            raise SpecError(spec.at(f"tolerations[{index}]"), "must be a mapping, got null")
        out.append(_toleration(Fields(item, spec.at(f"tolerations[{index}]"),
                                      allowed=_keys("key", "operator", "value", "effect",
                                                    "tolerationSeconds"))))
    return tuple(out)


def _toleration(tol: Fields) -> Toleration:
    """A pod toleration, judged as the API server judges one on a pod (and the CRD's CEL
    rules): an empty key matches every taint and needs Exists; Exists takes no value;
    tolerationSeconds only with NoExecute."""
    operator = tol.string("operator", default="Equal") or "Equal"
    if operator not in ("Equal", "Exists"):
        raise SpecError(tol.at("operator"), f"must be Equal or Exists, got {operator!r}")
    effect = tol.string("effect")
    if effect is not None and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise SpecError(tol.at("effect"), f"must be NoSchedule, PreferNoSchedule or "
                                          f"NoExecute, got {effect!r}")
    key = tol.string("key", allow_empty=True)
    value = tol.string("value", allow_empty=True)
    seconds = tol.integer("tolerationSeconds")
    if not key and operator != "Exists":
        raise SpecError(tol.at("operator"), "must be Exists when the key is empty")
    problem = label_key_problem(key) if key else None
    if problem is not None:
        raise SpecError(tol.at("key"), problem)
    problem = label_value_problem(value) if value else None
    if problem is not None:
        raise SpecError(tol.at("value"), problem)
    if operator == "Exists" and value:
        raise SpecError(tol.at("value"), "must be empty when the operator is Exists")
    if seconds is not None and effect != "NoExecute":
        raise SpecError(tol.at("tolerationSeconds"), "only with effect NoExecute")
    return Toleration(key=key, operator=operator, value=value, effect=effect,
                      toleration_seconds=seconds)


def _accelerator(spec: Fields) -> Accelerator | None:
    if not spec.has("accelerator"):
        return None
    acc = spec.child("accelerator", _keys("type", "count", "memoryGiB", "memoryBandwidthGBps",
                                          "peakTFLOPS", "peakTFLOPSFP8", "resourceName"))
    return Accelerator(
        type=acc.req_string("type"),
        count=acc.req_integer("count", minimum=1, maximum=MAX_ACCELERATOR_COUNT),
        memory_gib=float(acc.req_integer("memoryGiB", minimum=1)),
        memory_bandwidth_gbps=float(acc.req_integer("memoryBandwidthGBps", minimum=1)),
        peak_tflops=acc.req_decimal("peakTFLOPS", positive=True),
        resource_name=_resource_name(acc),
        peak_tflops_fp8=acc.decimal("peakTFLOPSFP8", positive=True),
    )


def _resource_name(acc: Fields) -> str:
    name = acc.string("resourceName", default="nvidia.com/gpu") or "nvidia.com/gpu"
    problem = extended_resource_problem(name)
    if problem is not None:
        raise SpecError(acc.at("resourceName"), f"{name!r}: {problem}")
    return name


def _tuning(spec: Fields) -> Tuning:
    tuning = spec.child("tuning", _keys("decodeEfficiency", "prefillEfficiency",
                                        "cpuDecodeGFLOPSPerCore", "cpuPrefillGFLOPSPerCore",
                                        "coldStartSeconds", "cpuMillisPerThread"))
    for key in ("decodeEfficiency", "prefillEfficiency"):
        value = tuning.decimal(key, positive=True)
        if value is not None and value > 1:
            raise SpecError(tuning.at(key), f"must be <= 1, got {value}")
        tuning.string(key, pattern=EFFICIENCY_PATTERN)
    cold = tuning.integer("coldStartSeconds", minimum=0)
    millis = tuning.integer("cpuMillisPerThread", minimum=100, maximum=1000)
    return Tuning(
        decode_efficiency=tuning.decimal("decodeEfficiency", positive=True),
        prefill_efficiency=tuning.decimal("prefillEfficiency", positive=True),
        cpu_decode_gflops_per_core=tuning.decimal("cpuDecodeGFLOPSPerCore", positive=True),
        cpu_prefill_gflops_per_core=tuning.decimal("cpuPrefillGFLOPSPerCore", positive=True),
        cold_start_seconds=None if cold is None else float(cold),
        cpu_millis_per_thread=millis,
    )
