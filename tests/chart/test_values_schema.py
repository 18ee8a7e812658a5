"""values.schema.json rejects bad values with a message naming the value, and values.yaml
documents every value."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .helmutil import CHART, RenderError, one, render, render_text

SCHEMA = json.loads((CHART / "values.schema.json").read_text())

# (values, the JSON pointer helm must name, a fragment of the reason)
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("replicas-negative", {"operator": {"replicas": -1}}, "/operator/replicas", "minimum"),
    ("replicas-string", {"operator": {"replicas": "one"}}, "/operator/replicas", "string"),
    ("lease-too-short", {"operator": {"leaderElection": {"leaseDurationSeconds": 1}}},
     "/operator/leaderElection/leaseDurationSeconds", "minimum"),
    ("leader-election-string", {"operator": {"leaderElection": {"enabled": "yes"}}},
     "/operator/leaderElection/enabled", "boolean"),
    ("energy-source", {"energySource": "magic"}, "/energySource", "kepler"),
    ("image-tag-number", {"operator": {"image": {"tag": 5}}}, "/operator/image/tag", "number"),
    ("serving-tag-number", {"serving": {"image": {"gpu": {"tag": 1.2}}}},
     "/serving/image/gpu/tag", "number"),
    ("pull-policy", {"serving": {"image": {"cpu": {"pullPolicy": "Sometimes"}}}},
     "/serving/image/cpu/pullPolicy", "IfNotPresent"),
    ("image-repository-missing", {"operator": {"image": {"repository": None}}},
     "/operator/image", "repository"),
    ("health-port-zero", {"operator": {"healthPort": 0}}, "/operator/healthPort", "minimum"),
    ("metrics-port-big", {"operator": {"metricsPort": 70000}}, "/operator/metricsPort",
     "maximum"),
    ("interval-zero", {"autoscaler": {"intervalSeconds": 0}}, "/autoscaler/intervalSeconds",
     "minimum"),
    ("prometheus-url", {"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url",
     "pattern"),
    ("unknown-top-level", {"replicas": 2}, "replicas", "additional"),
    ("unknown-operator-key", {"operator": {"replica": 2}}, "replica", "additional"),
    ("enabled-string", {"operator": {"enabled": "yes"}}, "/operator/enabled", "boolean"),
    ("namespace-invalid", {"operator": {"namespaces": ["Team_A"]}}, "/operator/namespaces/0",
     "pattern"),
    ("pool-without-spec", {"servingPools": [{"name": "p"}]}, "/servingPools/0", "spec"),
    ("pool-bad-name", {"servingPools": [{"name": "P!", "spec": {
        "node": {}, "pricing": {}, "power": {}, "carbon": {}}}]},
     "/servingPools/0/name", "pattern"),
    ("rbac-wildcard", {"rbac": {"rules": [
        {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}]}},
     "/rbac/rules/0/apiGroups/0", ""),
    ("rbac-secrets", {"rbac": {"rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}},
     "/rbac/rules/0/resources/0", ""),
    ("rbac-verb-star", {"rbac": {"rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]}},
     "/rbac/rules/0/verbs/0", ""),
    ("scrape-interval", {"serviceMonitor": {"interval": "30"}}, "/serviceMonitor/interval",
     "pattern"),
]


@pytest.mark.parametrize(("values", "pointer", "reason"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_values_rejected(values: dict[str, Any], pointer: str, reason: str) -> None:
    with pytest.raises(RenderError) as err:
        render_text(values)
    msg = str(err.value)
    assert "schema" in msg, msg
    assert pointer in msg, f"message does not name {pointer}: {msg}"
    assert reason.lower() in msg.lower(), msg


GOOD: list[dict[str, Any]] = [
    {"operator": {"replicas": 0}},
    {"operator": {"image": {"tag": "5"}}},
    {"energySource": "dcgm"},
    {"energySource": "wattserve"},
    {"operator": {"namespaces": ["a", "b-2"]}},
    {"prometheus": {"url": "https://prom.example:443/prometheus"}},
]


@pytest.mark.parametrize("values", GOOD, ids=[json.dumps(v) for v in GOOD])
def test_good_values_accepted(values: dict[str, Any]) -> None:
    assert render(values)


def test_schema_shape() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(SCHEMA["properties"])
    for img in (SCHEMA["properties"]["operator"]["properties"]["image"],
                SCHEMA["properties"]["serving"]["properties"]["image"]["properties"]["cpu"],
                SCHEMA["properties"]["serving"]["properties"]["image"]["properties"]["gpu"]):
        assert set(img["required"]) == {"repository", "tag", "pullPolicy"}


def _documented_keys(node: yaml.Node, schema: dict[str, Any], lines: list[str],
                     path: str, missing: list[str]) -> None:
    """Every key of values.yaml that the schema names must have a comment: on the line(s)
    just above it, or at the end of its own line. Free-form maps/lists are not descended."""
    if not isinstance(node, yaml.MappingNode):
        return
    props = schema.get("properties", {})
    for key_node, value_node in node.value:
        key = key_node.value
        sub = props.get(key)
        if sub is None:
            continue
        line = key_node.start_mark.line
        above = lines[line - 1].strip() if line > 0 else ""
        if not (above.startswith("#") or "#" in lines[line].split(":", 1)[1]):
            missing.append(f"{path}{key}")
        if str(sub.get("$comment", "")).startswith("k8s:"):
            continue  # a Kubernetes object (LabelSelector, resources): its fields are k8s's
        _documented_keys(value_node, sub, lines, f"{path}{key}.", missing)


def test_every_value_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    missing: list[str] = []
    _documented_keys(yaml.compose(text), SCHEMA, text.splitlines(), "", missing)
    assert not missing, f"values without a comment in values.yaml: {missing}"


def test_every_value_in_schema() -> None:
    """Every key of values.yaml is declared in the schema (objects with fixed keys)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    undeclared: list[str] = []

    def walk(v: Any, s: dict[str, Any], path: str) -> None:
        if not isinstance(v, dict) or "properties" not in s:
            return
        for k, sub in v.items():
            if k not in s["properties"]:
                undeclared.append(path + k)
            else:
                walk(sub, s["properties"][k], f"{path}{k}.")

    walk(values, SCHEMA, "")
    assert not undeclared


def test_every_value_in_docs() -> None:
    """docs/chart.md's values table names every documented value."""
    text = (CHART / "values.yaml").read_text()
    docs = (CHART.parents[1] / "docs" / "chart.md").read_text()
    paths: list[str] = []

    def walk(node: yaml.Node, s: dict[str, Any], path: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            sub = s.get("properties", {}).get(key_node.value)
            if sub is None:
                continue
            paths.append(path + key_node.value)
            if not str(sub.get("$comment", "")).startswith("k8s:"):
                walk(value_node, sub, f"{path}{key_node.value}.")

    walk(yaml.compose(text), SCHEMA, "")
    missing = [p for p in paths if f"| `{p}` |" not in docs]
    assert not missing, f"not in the docs/chart.md values table: {missing}"


def test_forms_users_write_are_accepted_and_values_the_api_refuses_are_not() -> None:
    """imagePullSecrets as Kubernetes writes them, a numeric price and an empty Prometheus
    URL (the autoscaler off) pass; a numeric env value, a repeated namespace and equal
    activator ports fail naming the value (they failed later, at the API server)."""
    docs = render({"operator": {"imagePullSecrets": ["plain", {"name": "regcred"}]},
                   "dashboard": {"enabled": True, "defaultUsdPerNodeHour": 0.9},
                   "prometheus": {"url": ""}})
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "plain"}, {"name": "regcred"}]
    env = {e["name"]: e.get("value") for e in
           deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WATTSERVE_PROMETHEUS_URL"] == ""
    for values, field in (
            ({"operator": {"extraEnv": [{"name": "FOO", "value": 5}]}}, "extraEnv"),
            ({"serving": {"networkPolicy": {"enabled": True, "namespaces": ["a", "a"]}}},
             "namespaces"),
            ({"activator": {"enabled": True, "port": 9091, "adminPort": 9091}},
             "activator.port"),
            ({"prometheus": {"url": "prometheus:9090"}}, "url")):
        with pytest.raises(RenderError, match=field):
            render(values)
