"""Property: whatever the CRD schema admits, the parser and the planner never crash.

ModelDeployments and ServingPools are drawn from the CRDs' own OpenAPI schemas (patterns,
maxLength, minimum/maximum, enums), so a new field or bound is fuzzed without a change
here. The only exception allowed is the field-precise SpecError (for the CEL rules and
the cross-field checks the schema alone does not express).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wattserve.api import SpecError, parse_model_deployment, parse_serving_pool
from wattserve.planning import plan

from tests.unit.factories import example_pools, md_doc

CRDS = Path(__file__).resolve().parents[2] / "crds"
INT64 = 2**63 - 1


def _schema(name: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / name).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return st.integers(schema.get("minimum", -INT64), schema.get("maximum", INT64))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False,
                         allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        cap = schema.get("maxLength", 400)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: schema.get("minLength", 0) <= len(s) <= cap)
        return st.text(min_size=schema.get("minLength", 0), max_size=min(cap, 400))
    if kind == "array":
        return st.lists(_strategy(schema.get("items", {})), max_size=3)
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", ()))
        fields = {k: _strategy(v) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "object":
        return st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                               st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), max_size=2)
    return st.none()


MD_SPEC = _strategy(_schema("wattserve.dev_modeldeployments.yaml"))
POOL_SPEC = _strategy(_schema("wattserve.dev_servingpools.yaml"))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=MD_SPEC)
def test_any_crd_valid_model_deployment_parses_or_is_refused_by_field(
    spec: dict[str, Any],
) -> None:
    doc = md_doc()
    doc["spec"] = spec
    try:
        md = parse_model_deployment(doc)
    except SpecError:
        return
    plan(md, example_pools())  # must not raise


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=POOL_SPEC)
def test_any_crd_valid_pool_parses_or_is_refused_by_field(spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "wattserve.dev/v1alpha1", "kind": "ServingPool",
           "metadata": {"name": "fuzz"}, "spec": spec}
    try:
        pool = parse_serving_pool(doc)
    except SpecError:
        return
    plan(parse_model_deployment(md_doc()), [pool, *example_pools()])  # must not raise


def _digits(max_len: int) -> st.SearchStrategy[str]:
    """Long digit strings (from_regex rarely draws long ones): the review's 309 digits."""
    return st.builds(lambda n, d: d * n, st.integers(1, max_len), st.sampled_from("19"))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(rps=_digits(400), params=_digits(400).map(lambda d: d + "T"))
def test_huge_numbers_are_refused_by_field_or_planned(rps: str, params: str) -> None:
    doc = md_doc(expectedLoad={"requestsPerSecond": rps})
    doc["spec"]["model"]["parameters"] = params
    try:
        md = parse_model_deployment(doc)
    except SpecError as exc:
        assert exc.path in ("spec.expectedLoad.requestsPerSecond", "spec.model.parameters")
        return
    plan(md, example_pools())


def _number_fields(schema: dict[str, Any], path: str = "") -> list[tuple[str, int]]:
    """(dotted path, maxLength) of every numeric string field of the schema."""
    out: list[tuple[str, int]] = []
    for key, sub in schema.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        if sub.get("type") == "string" and sub.get("pattern", "").lstrip("^(").startswith("[0-9]"):
            out.append((where, sub["maxLength"]))
        out += _number_fields(sub, where)
    return out


def test_the_longest_numbers_the_crd_admits_are_planned() -> None:
    fields = _number_fields(_schema("wattserve.dev_modeldeployments.yaml"))
    assert ("expectedLoad.requestsPerSecond", 32) in fields
    for where, max_len in fields:
        doc = md_doc()
        node = doc["spec"]
        *parents, leaf = where.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = "9" * (max_len - 1) + ("T" if leaf.endswith("arameters") else "9")
        if leaf == "activeParameters":  # at most the parameters
            node["parameters"] = node[leaf]
        plan(parse_model_deployment(doc), example_pools())  # before: OverflowError


def _paths(schema: dict[str, Any], path: str = "") -> list[str]:
    out: list[str] = []
    for key, sub in schema.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        out += [where, *_paths(sub, where)]
    return out


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=MD_SPEC, where=st.sampled_from(_paths(_schema("wattserve.dev_modeldeployments.yaml"))),
       junk=JSON)
def test_junk_anywhere_is_a_field_precise_error(spec: dict[str, Any], where: str,
                                                junk: Any) -> None:
    doc = md_doc()
    doc["spec"] = spec
    node: Any = doc["spec"]
    path = where.split(".")
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = junk
    try:
        md = parse_model_deployment(doc)
    except SpecError as exc:
        assert exc.path.startswith("spec") and exc.message
        return
    plan(md, example_pools())
