"""The CRD's schema and the Python types accept and reject the same ModelDeployments.

Here the JSON-schema part of the CRD is checked with `jsonschema` (strict about unknown
fields, like `kubectl apply`'s default field validation); the CEL rules are checked
against a real API server in tests/integration/test_crd_agreement.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from wattserve.api import SpecError, parse_model_deployment, parse_serving_pool

from tests.spec_cases import CASES, POOL_CASES, Case, base_pool

CRDS = Path(__file__).resolve().parents[2] / "crds"


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Reject unknown fields where the CRD does not preserve them."""
    out = copy.deepcopy(schema)
    if out.get("type") == "object" and "properties" in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    for key in ("properties",):
        for name, sub in list(out.get(key, {}).items()):
            out[key][name] = _strict(sub)
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    return out


def _schema(name: str = "wattserve.dev_modeldeployments.yaml") -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / name).read_text())
    return _strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


SCHEMA = _schema()
POOL_SCHEMA = _schema("wattserve.dev_servingpools.yaml")


def _schema_errors(doc: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [".".join(str(p) for p in err.absolute_path) + ": " + err.message
            for err in validator.iter_errors(doc)]


@pytest.mark.parametrize("case", [c for c in CASES if not c.cel], ids=lambda c: c.id)
def test_schema_and_parser_agree(case: Case) -> None:
    doc = case.doc()
    schema_errors = _schema_errors(doc)
    try:
        parse_model_deployment(doc)
        parser_error = None
    except SpecError as exc:
        parser_error = exc
    assert (not schema_errors) == case.valid, schema_errors
    assert (parser_error is None) == case.valid, parser_error
    if not case.valid:
        assert parser_error is not None and case.field in parser_error.path
        assert any(case.field in err for err in schema_errors), schema_errors


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_pool_schema_and_parser_agree(case: Case) -> None:
    """Pools: the parser judges every case as the API server does; the JSON-schema part of
    the CRD judges the cases no CEL rule decides."""
    doc = base_pool()
    doc["spec"].update(copy.deepcopy(case.patch))
    try:
        parse_serving_pool(doc)
        parser_error = None
    except SpecError as exc:
        parser_error = exc
    assert (parser_error is None) == case.valid, parser_error
    if not case.valid:
        assert parser_error is not None and case.field.split()[0] in str(parser_error)
    if not case.cel:
        schema_errors = _schema_errors(doc, POOL_SCHEMA)
        assert (not schema_errors) == case.valid, schema_errors
        if not case.valid:
            assert any(case.field in err for err in schema_errors), schema_errors


@pytest.mark.parametrize("case", [c for c in CASES if c.cel], ids=lambda c: c.id)
def test_cel_cases_are_rejected_by_the_parser(case: Case) -> None:
    with pytest.raises(SpecError) as err:
        parse_model_deployment(case.doc())
    assert case.field in err.value.path


def test_every_crd_field_with_a_default_has_the_same_default_in_python() -> None:
    spec = parse_model_deployment(CASES[0].doc()).spec
    props = SCHEMA["properties"]["spec"]["properties"]
    scaling = props["scaling"]["properties"]
    assert scaling["minReplicas"]["default"] == spec.scaling.min_replicas
    assert scaling["maxReplicas"]["default"] == spec.scaling.max_replicas
    assert scaling["targetUtilizationPercent"]["default"] == spec.scaling.target_utilization_percent
    assert scaling["scaleDownDelaySeconds"]["default"] == spec.scaling.scale_down_delay_seconds
    assert props["objective"]["default"] == spec.objective.value
    assert props["backend"]["default"] == spec.backend.value
    load = props["expectedLoad"]["properties"]
    assert float(load["requestsPerSecond"]["default"]) == spec.expected_load.requests_per_second
    assert load["promptTokens"]["default"] == spec.expected_load.prompt_tokens
    model = props["model"]["properties"]
    assert model["contextLength"]["default"] == 4096
    assert model["quantization"]["enum"] == [q.value for q in type(spec.model.quantization)]


def test_every_spec_field_is_described_for_kubectl_explain() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        missing = []
        for name, sub in node.get("properties", {}).items():
            where = f"{path}.{name}"
            if "description" not in sub:
                missing.append(where)
            missing += walk(sub, where)
        return missing

    assert walk(SCHEMA["properties"]["spec"], "spec") == []


@pytest.mark.parametrize("pool", [False, True], ids=["modeldeployment", "servingpool"])
def test_an_object_without_spec_is_refused_by_the_schema_and_the_parser(pool: bool) -> None:
    doc = base_pool() if pool else CASES[0].doc()
    del doc["spec"]
    assert any("'spec' is a required property" in err
               for err in _schema_errors(doc, POOL_SCHEMA if pool else SCHEMA))
    with pytest.raises(SpecError) as err:
        (parse_serving_pool if pool else parse_model_deployment)(doc)
    assert err.value.path == "spec"
