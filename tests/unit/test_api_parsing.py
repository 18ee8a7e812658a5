"""The API parser turns CR dicts into frozen types and names the field of every error."""

from __future__ import annotations

import dataclasses

import pytest
from wattserve.api import (
    Backend,
    EngineChoice,
    Objective,
    Quantization,
    SpecError,
    load_yaml_documents,
    parse_model_deployment,
    parse_serving_pool,
)
from wattserve.api.quantities import parse_decimal, parse_parameter_count

from tests.unit.factories import DELETE, md_doc, with_path


def test_defaults_fill_every_optional_field() -> None:
    md = parse_model_deployment(md_doc())
    assert md.name == "demo" and md.namespace == "ns"
    spec = md.spec
    assert spec.objective is Objective.COST
    assert spec.backend is Backend.DEPLOYMENT
    assert spec.placement.engine is EngineChoice.AUTO and spec.placement.allow_gpu
    assert (spec.scaling.min_replicas, spec.scaling.max_replicas) == (1, 10)
    assert spec.scaling.target_utilization_percent == 70
    assert spec.model.quantization is Quantization.FP8
    assert spec.budget.max_usd_per_hour is None


def test_types_are_frozen() -> None:
    md = parse_model_deployment(md_doc())
    with pytest.raises(dataclasses.FrozenInstanceError):
        md.spec.slo.latency_p95_ms = 1  # type: ignore[misc]


@pytest.mark.parametrize(("text", "count"), [
    ("135M", 135_000_000), ("8B", 8_000_000_000), ("1.5B", 1_500_000_000),
    ("70B", 70_000_000_000), ("2T", 2_000_000_000_000), ("500K", 500_000),
])
def test_parameter_counts_parse(text: str, count: int) -> None:
    assert parse_parameter_count(text, "p") == count


@pytest.mark.parametrize("bad", ["lots", "8", "8b", "B", "-1B", "1.B", 8, None, "0B"])
def test_malformed_parameter_counts_are_rejected(bad: object) -> None:
    with pytest.raises(SpecError) as err:
        parse_parameter_count(bad, "spec.model.parameters")
    assert err.value.path == "spec.model.parameters"


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("0.25", 0.25), ("12", 12.0)])
def test_decimals_are_strings(text: str, value: float) -> None:
    assert parse_decimal(text, "x") == value


@pytest.mark.parametrize("bad", [0.5, "1e3", "-1", ".5", "1.", "abc", True])
def test_non_decimal_strings_are_rejected(bad: object) -> None:
    with pytest.raises(SpecError):
        parse_decimal(bad, "x")


@pytest.mark.parametrize(("path", "value", "field"), [
    ("spec.scaling", {"minReplicas": 5, "maxReplicas": 2}, "spec.scaling.minReplicas"),
    ("spec.slo.latencyP95Ms", -5, "spec.slo.latencyP95Ms"),
    ("spec.slo.latencyP95Ms", 0, "spec.slo.latencyP95Ms"),
    ("spec.slo.latencyP95Ms", "100", "spec.slo.latencyP95Ms"),
    ("spec.model.quantization", "q3_k", "spec.model.quantization"),
    ("spec.model.parameters", "lots", "spec.model.parameters"),
    ("spec.model", DELETE, "spec.model"),
    ("spec.model.source", "http://x", "spec.model.source"),
    ("spec.model.name", DELETE, "spec.model.name"),
    ("spec.objective", "speed", "spec.objective"),
    ("spec.budget", {"maxUSDPerHour": 5}, "spec.budget.maxUSDPerHour"),
    ("spec.budget", {"maxUSDPerHour": "0"}, "spec.budget.maxUSDPerHour"),
    ("spec.expectedLoad", {"requestsPerSecond": 2.5}, "spec.expectedLoad.requestsPerSecond"),
    ("spec.placement", {"allowGPU": "yes"}, "spec.placement.allowGPU"),
    ("spec.backend", "knative", "spec.backend"),
    ("spec.slo", {"latencyP95Ms": 100, "timeToFirstTokenP95Ms": 200},
     "spec.slo.timeToFirstTokenP95Ms"),
    ("spec.model.architecture", {"attentionHeads": 8, "kvHeads": 16},
     "spec.model.architecture.kvHeads"),
    ("spec.surprise", 1, "spec.surprise"),
    ("spec.scaling", {"minReplica": 1}, "spec.scaling.minReplica"),
    ("metadata.name", "Bad_Name", "metadata.name"),
])
def test_invalid_model_deployments_name_the_field(path: str, value: object, field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_model_deployment(with_path(md_doc(), path, value))
    assert err.value.path == field
    assert str(err.value).startswith(field)


def test_wrong_kind_and_api_version_are_rejected() -> None:
    with pytest.raises(SpecError, match="kind"):
        parse_model_deployment(with_path(md_doc(), "kind", "Deployment"))
    with pytest.raises(SpecError, match="apiVersion"):
        parse_model_deployment(with_path(md_doc(), "apiVersion", "v1"))


def test_status_and_unknown_metadata_are_tolerated() -> None:
    doc = with_path(md_doc(), "status", {"observedGeneration": 3})
    doc["metadata"]["labels"] = {"a": "b"}
    doc["metadata"]["generation"] = 4
    assert parse_model_deployment(doc).generation == 4


def test_non_mapping_inputs_are_rejected_not_crashing() -> None:
    for bad in (None, [], "text", 5):
        with pytest.raises(SpecError):
            parse_model_deployment(bad)
    with pytest.raises(SpecError, match=r"spec\.slo"):
        parse_model_deployment(with_path(md_doc(), "spec.slo", [1, 2]))


def _pool_doc() -> dict[str, object]:
    return {
        "apiVersion": "wattserve.dev/v1alpha1", "kind": "ServingPool",
        "metadata": {"name": "p"},
        "spec": {"node": {"cpu": 16, "memoryGiB": 64, "memoryBandwidthGBps": 44},
                 "pricing": {"usdPerNodeHour": "0.8"}, "power": {"idleWatts": 30, "maxWatts": 90},
                 "carbon": {"gramsCO2PerKWh": 400}},
    }


def test_cpu_pool_parses_without_accelerator() -> None:
    pool = parse_serving_pool(_pool_doc())
    assert not pool.spec.is_gpu and pool.spec.max_nodes == 10
    assert pool.spec.usd_per_node_hour == 0.8


@pytest.mark.parametrize(("path", "value", "field"), [
    ("spec.power", {"idleWatts": 100, "maxWatts": 50}, "spec.power.idleWatts"),
    ("spec.node.cpu", 0, "spec.node.cpu"),
    ("spec.pricing.usdPerNodeHour", 1.5, "spec.pricing.usdPerNodeHour"),
    ("spec.accelerator", {"type": "x", "count": 1, "memoryGiB": 24,
                          "memoryBandwidthGBps": 300, "peakTFLOPS": "0"},
     "spec.accelerator.peakTFLOPS"),
    ("spec.tolerations", [{"key": "a", "operator": "Maybe"}], "spec.tolerations[0].operator"),
    ("spec.tuning", {"decodeEfficiency": "1.5"}, "spec.tuning.decodeEfficiency"),
    ("spec.carbon", DELETE, "spec.carbon"),
])
def test_invalid_pools_name_the_field(path: str, value: object, field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_serving_pool(with_path(_pool_doc(), path, value))  # type: ignore[arg-type]
    assert err.value.path == field


def test_yaml_loader_reports_syntax_errors_and_empty_input() -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        load_yaml_documents("a: [", "f.yaml")
    with pytest.raises(SpecError, match="empty"):
        load_yaml_documents("---\n", "f.yaml")
    with pytest.raises(SpecError, match="mapping"):
        load_yaml_documents("- 1\n- 2\n", "f.yaml")
    docs = load_yaml_documents("kind: List\nitems:\n- {kind: A}\n- {kind: B}\n")
    assert [d["kind"] for d in docs] == ["A", "B"]
