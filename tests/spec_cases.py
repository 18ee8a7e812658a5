"""One table of ModelDeployment specs that both the CRD (API server) and the Python
parser must judge the same way. Used by the unit agreement test (JSON-schema part of
the CRD) and the integration agreement test (the real API server, CEL included)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


def base_md(name: str = "agree") -> dict[str, Any]:
    return {
        "apiVersion": "wattserve.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "m", "source": "hf://org/m", "parameters": "8B",
                      "quantization": "fp8"},
            "slo": {"latencyP95Ms": 5000},
        },
    }


@dataclass(frozen=True)
class Case:
    id: str
    patch: dict[str, Any]  # merged into spec (None deletes a key)
    valid: bool
    field: str = ""  # the field an error must name
    cel: bool = False  # judged by a CEL rule, not the JSON schema

    def doc(self, name: str = "agree") -> dict[str, Any]:
        doc = base_md(name)
        _merge(doc["spec"], copy.deepcopy(self.patch))
        return doc


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


CASES: tuple[Case, ...] = (
    Case("minimal", {}, True),
    Case("full", {"objective": "energy", "backend": "rayservice",
                  "budget": {"maxJoulesPerToken": "0.5", "maxUSDPerHour": "12.5"},
                  "expectedLoad": {"requestsPerSecond": "0.25", "promptTokens": 10,
                                   "outputTokens": 5},
                  "placement": {"pool": "gpu-l4", "engine": "vllm", "allowGPU": True},
                  "scaling": {"minReplicas": 2, "maxReplicas": 2}}, True),
    Case("min-above-max", {"scaling": {"minReplicas": 5, "maxReplicas": 2}}, False,
         "minReplicas", cel=True),
    Case("min-above-default-max", {"scaling": {"minReplicas": 11}}, False, "minReplicas",
         cel=True),
    Case("negative-slo", {"slo": {"latencyP95Ms": -5}}, False, "latencyP95Ms"),
    Case("zero-slo", {"slo": {"latencyP95Ms": 0}}, False, "latencyP95Ms"),
    Case("ttft-above-latency", {"slo": {"timeToFirstTokenP95Ms": 9000}}, False,
         "timeToFirstTokenP95Ms", cel=True),
    Case("unknown-quantization", {"model": {"quantization": "q3_k"}}, False, "quantization"),
    Case("parameters-lots", {"model": {"parameters": "lots"}}, False, "parameters"),
    Case("parameters-lowercase", {"model": {"parameters": "8b"}}, False, "parameters"),
    Case("missing-model", {"model": None}, False, "model"),
    Case("missing-slo", {"slo": None}, False, "slo"),
    Case("bad-source", {"model": {"source": "ftp://x"}}, False, "source"),
    Case("oci-source", {"model": {"source": "oci://ghcr.io/wattserve/model-smollm2-135m:q4_1"}},
         True),
    Case("oci-digest", {"model": {"source": "oci://localhost:5000/m@sha256:" + "0" * 64}}, True),
    Case("oci-empty", {"model": {"source": "oci://"}}, False, "source"),
    Case("oci-uppercase-repo", {"model": {"source": "oci://reg.io/Models/x:1"}}, False, "source"),
    Case("oci-shell", {"model": {"source": "oci://reg.io/x:1;$(TOKEN)"}}, False, "source"),
    Case("source-newline", {"model": {"source": "hf://org/m\nx"}}, False, "source"),
    Case("float-budget", {"budget": {"maxUSDPerHour": 2.5}}, False, "maxUSDPerHour"),
    Case("zero-budget", {"budget": {"maxUSDPerHour": "0"}}, False, "maxUSDPerHour"),
    Case("float-rps", {"expectedLoad": {"requestsPerSecond": 2.5}}, False, "requestsPerSecond"),
    Case("zero-rps", {"expectedLoad": {"requestsPerSecond": "0"}}, True),
    Case("unknown-objective", {"objective": "speed"}, False, "objective"),
    Case("unknown-field", {"replicas": 3}, False, "replicas"),
    Case("kv-heads-above-heads", {"model": {"architecture": {"attentionHeads": 8,
                                                             "kvHeads": 16}}},
         False, "kvHeads", cel=True),
    Case("context-too-short", {"model": {"contextLength": 16}}, False, "contextLength"),
    Case("utilization-over-100", {"scaling": {"targetUtilizationPercent": 150}}, False,
         "targetUtilizationPercent"),
    Case("min-zero", {"scaling": {"minReplicas": 0}}, True),
    Case("bad-pin", {"placement": {"pool": "GPU_L4"}}, False, "pool"),
    Case("priority-bounds", {"priority": -1000}, True),
    Case("priority-too-high", {"priority": 1001}, False, "priority"),
    Case("priority-not-a-number", {"priority": "high"}, False, "priority"),
    # hostile sources and numbers (reliability review H1, H2, H5, M2, L3)
    Case("source-var-expansion", {"model": {"source": "hf://org/$(HF_TOKEN)"}}, False,
         "source"),
    Case("source-dotdot", {"model": {"source": "hf://org/../../etc"}}, False, "source"),
    Case("source-space", {"model": {"source": "hf://org/my model"}}, False, "source"),
    Case("source-s3", {"model": {"source": "s3://bucket/models/m"}}, False, "source",
         cel=True),
    Case("source-gguf", {"model": {"source": "gguf:///models/x.gguf"}}, True),
    Case("source-pvc", {"model": {"source": "pvc://weights/llama/8b"}}, True),
    Case("source-pvc-claim-only", {"model": {"source": "pvc://weights.v2"}}, True),
    # the claim is a PersistentVolumeClaim name, refused at admission, not after planning
    Case("source-pvc-uppercase-claim", {"model": {"source": "pvc://MyClaim/m.gguf"}}, False,
         "source", cel=True),
    Case("source-pvc-underscore-claim", {"model": {"source": "pvc://claim_1/m"}}, False,
         "source", cel=True),
    Case("source-pvc-no-claim", {"model": {"source": "pvc:///claim/m"}}, False, "source",
         cel=True),
    Case("source-pvc-claim-254", {"model": {"source": "pvc://" + "c" * 254 + "/m"}}, False,
         "source", cel=True),
    Case("source-too-long", {"model": {"source": "hf://org/" + "m" * 600}}, False, "source"),
    Case("rps-309-digits", {"expectedLoad": {"requestsPerSecond": "9" * 309}}, False,
         "requestsPerSecond"),
    Case("rps-32-digits", {"expectedLoad": {"requestsPerSecond": "9" * 32}}, True),
    Case("parameters-298-digits", {"model": {"parameters": "9" * 298 + "B"}}, False,
         "parameters"),
    Case("moe-active", {"model": {"parameters": "30B", "activeParameters": "3.3B"}}, True),
    Case("moe-active-units", {"model": {"parameters": "1.2T", "activeParameters": "32000M"}},
         True),
    Case("moe-active-above-total", {"model": {"parameters": "8B", "activeParameters": "9B"}},
         False, "activeParameters", cel=True),
    Case("moe-active-above-total-units",
         {"model": {"parameters": "900M", "activeParameters": "1B"}}, False,
         "activeParameters", cel=True),
    Case("moe-active-bad-suffix", {"model": {"activeParameters": "3G"}}, False,
         "activeParameters"),
    Case("quantization-int4", {"model": {"quantization": "int4"}}, True),
    Case("quantization-gguf-k", {"model": {"quantization": "q6_k"}}, True),
    Case("quantization-unknown", {"model": {"quantization": "q4_k_xl"}}, False, "quantization"),
    # what the engines would refuse: the typical request must fit the context
    Case("load-over-context", {"model": {"contextLength": 2048},
                               "expectedLoad": {"promptTokens": 4000}}, False,
         "promptTokens", cel=True),
    Case("default-load-over-short-context", {"model": {"contextLength": 256}}, False,
         "promptTokens", cel=True),
    Case("default-load-fills-context", {"model": {"contextLength": 384}}, True),
    Case("prompt-tokens-over-max", {"model": {"contextLength": 10_000_000},
                                    "expectedLoad": {"promptTokens": 20_000_000}}, False,
         "promptTokens"),
    Case("output-tokens-int64-overflow", {"expectedLoad": {"outputTokens": 2**64}}, False,
         "outputTokens"),
    Case("parameters-zero", {"model": {"parameters": "0M"}}, False, "parameters"),
    Case("parameters-fraction", {"model": {"parameters": "0.5B"}}, True),
    # JSON has one number type: the API server takes a whole float for an integer field
    Case("integral-float-slo", {"slo": {"latencyP95Ms": 3000.0}}, True),
    Case("fractional-slo", {"slo": {"latencyP95Ms": 3000.5}}, False, "latencyP95Ms"),
    Case("dotted-pin", {"placement": {"pool": "gpu.l4"}}, True),
)


def base_pool(name: str = "agree") -> dict[str, Any]:
    return {
        "apiVersion": "wattserve.dev/v1alpha1",
        "kind": "ServingPool",
        "metadata": {"name": name},
        "spec": {
            "node": {"cpu": 8, "memoryGiB": 32, "memoryBandwidthGBps": 50},
            "pricing": {"usdPerNodeHour": "0.4"},
            "power": {"idleWatts": 50, "maxWatts": 200},
            "carbon": {"gramsCO2PerKWh": 300},
        },
    }


def _gpus(resource_name: str) -> dict[str, Any]:
    return {"type": "nvidia-l4", "count": 1, "memoryGiB": 24, "memoryBandwidthGBps": 300,
            "peakTFLOPS": "121", "resourceName": resource_name}


# ServingPool tolerations: what the API server would refuse on the serving pods it is
# copied to is refused on the pool (CEL rules), by the parser alike.
POOL_CASES: tuple[Case, ...] = (
    Case("tolerate-everything", {"tolerations": [{"operator": "Exists"}]}, True),
    Case("empty-key-exists", {"tolerations": [{"key": "", "operator": "Exists"}]}, True),
    Case("empty-value", {"tolerations": [{"key": "k", "value": ""}]}, True),
    Case("seconds-no-execute", {"tolerations": [{"key": "k", "effect": "NoExecute",
                                                 "tolerationSeconds": 300}]}, True),
    Case("empty-key-equal", {"tolerations": [{"key": "", "operator": "Equal"}]}, False,
         "operator must be Exists", cel=True),
    Case("exists-with-value", {"tolerations": [{"key": "k", "operator": "Exists",
                                                "value": "v"}]}, False,
         "value must be empty", cel=True),
    Case("seconds-no-schedule", {"tolerations": [{"key": "k", "effect": "NoSchedule",
                                                  "tolerationSeconds": 5}]}, False,
         "tolerationSeconds only", cel=True),
    # label keys and values as the API server judges them on the pods they are copied to
    Case("selector-qualified", {"nodeSelector": {"wattserve.dev/pool": "cpu-general",
                                                 "node.kubernetes.io/instance-type": "m7i",
                                                 "tier": ""}}, True),
    Case("selector-key-space", {"nodeSelector": {"bad key": "x"}}, False,
         "nodeSelector", cel=True),
    Case("selector-key-empty-prefix", {"nodeSelector": {"/pool": "x"}}, False,
         "nodeSelector", cel=True),
    Case("selector-key-name-64", {"nodeSelector": {"k" * 64: "x"}}, False,
         "nodeSelector", cel=True),
    Case("selector-value-slash", {"nodeSelector": {"pool": "a/b"}}, False, "nodeSelector"),
    Case("selector-value-64", {"nodeSelector": {"pool": "v" * 64}}, False, "nodeSelector"),
    Case("toleration-key-qualified", {"tolerations": [{"key": "nvidia.com/gpu",
                                                       "operator": "Exists"}]}, True),
    Case("toleration-key-dash", {"tolerations": [{"key": "-gpu", "operator": "Exists"}]},
         False, "key"),
    Case("toleration-value-underscore-end", {"tolerations": [{"key": "k", "value": "v_"}]},
         False, "value"),
    Case("toleration-key-prefix-253", {"tolerations": [{"key": "p" * 253 + "/k",
                                                        "operator": "Exists"}]}, True),
    Case("toleration-key-prefix-254", {"tolerations": [{"key": "p" * 254 + "/k",
                                                        "operator": "Exists"}]}, False,
         "tolerations", cel=True),
    Case("tolerations-65", {"tolerations": [{"key": f"k{i}", "operator": "Exists"}
                                            for i in range(65)]}, False, "tolerations"),
    Case("selector-65", {"nodeSelector": {f"k{i}": "v" for i in range(65)}}, False,
         "nodeSelector"),
    Case("selector-key-prefix-253", {"nodeSelector": {"p" * 253 + "/k": "v"}}, True),
    Case("selector-key-prefix-254", {"nodeSelector": {"p" * 254 + "/k": "v"}}, False,
         "nodeSelector", cel=True),
    # judged by the API server's RE2 patterns ('$' is the end of the text): Python's
    # jsonschema lets '$' match before a final newline, so only the API server checks it
    Case("selector-value-newline", {"nodeSelector": {"pool": "gpu\n"}}, False, "nodeSelector",
         cel=True),
    # the accelerators are counted by an extended resource, never by cpu or memory
    Case("resource-name-amd", {"accelerator": _gpus("amd.com/gpu")}, True),
    Case("resource-name-memory", {"accelerator": _gpus("memory")}, False, "resourceName"),
    Case("resource-name-cpu", {"accelerator": _gpus("cpu")}, False, "resourceName"),
    Case("resource-name-kubernetes-io", {"accelerator": _gpus("kubernetes.io/gpu")}, False,
         "resourceName", cel=True),
    Case("resource-name-quota", {"accelerator": _gpus("requests.nvidia.com/gpu")}, False,
         "resourceName", cel=True),
)
