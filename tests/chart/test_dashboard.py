"""The Grafana dashboard: valid JSON, the panels asked for, PromQL on contract.py metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from .helmutil import CHART, REPO_ROOT, by_kind, render

CONTRACT = (REPO_ROOT / "operator" / "wattserve" / "contract.py").read_text()
# Every exported metric name in contract.py, and which of them are histograms.
METRICS = set(re.findall(r'^[A-Z_0-9]+: Final = "(wattserve_[a-z0-9_]+)"', CONTRACT, re.M))
HISTOGRAMS = set(
    re.findall(r'^[A-Z_0-9]+: Final = "(wattserve_[a-z0-9_]+)"\s*#\s*histogram', CONTRACT, re.M)
)
SERVING_LABELS = set(re.findall(r'^LABEL_[A-Z_]+: Final = "([a-z_]+)"', CONTRACT, re.M))

PROMQL_WORDS = {
    # aggregations and their modifiers
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset",
    # functions
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "vector",
    "scalar", "label_replace", "label_join", "clamp_min", "clamp_max", "abs", "round",
    "sum_over_time", "avg_over_time", "max_over_time", "min_over_time", "time", "absent",
    "le",
}

POOLS_VALUES = CHART / "examples" / "pools-values.yaml"


def _dashboard(values: dict[str, Any] | None = None, files: tuple[Any, ...] = ()) -> Any:
    docs = render({"dashboard": {"enabled": True}, **(values or {})}, files=files)
    (cm,) = by_kind(docs, "ConfigMap")
    return json.loads(cm["data"]["wattserve.json"])


def _targets(dash: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label names, functions, keywords,
    numbers, strings and Grafana variables removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)             # strings
    e = re.sub(r"\$\{?\w+\}?", " 1 ", e)                       # Grafana variables
    e = re.sub(r"\{[^}]*\}", " ", e)                           # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                          # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"(?<![\w.])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)  # numbers
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e))
    return words - PROMQL_WORDS


def _allowed(name: str) -> bool:
    if name in METRICS:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return True
    return False


def test_contract_parsed() -> None:
    assert "wattserve_requests_total" in METRICS
    assert "wattserve_operator_desired_replicas" in METRICS
    assert "wattserve_request_duration_seconds" in HISTOGRAMS
    assert "wattserve_operator_predicted_p95_seconds" not in HISTOGRAMS


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, pool) '
            '(rate(foo_bucket{a="b"}[$__rate_interval])))'
            ' / on(pool) group_left() label_replace(vector(1e+06), "pool", "x", "", "")'
            " * $var or bar")
    assert metric_names(expr) == {"foo_bucket", "bar"}


@pytest.fixture(scope="module", params=["no-pools", "example-pools"])
def dashboard(request: pytest.FixtureRequest) -> Any:
    files = (POOLS_VALUES,) if request.param == "example-pools" else ()
    return _dashboard(files=files)


def test_json_is_a_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert "__" not in json.dumps(dashboard).replace("$__rate_interval", "").replace(
        "$__all", ""), "an unreplaced placeholder"


def test_promql_uses_only_contract_metrics(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    for title, expr in _targets(dashboard):
        names = metric_names(expr)
        bad = {n for n in names if not _allowed(n)}
        assert not bad, f"panel {title!r}: not in contract.py: {sorted(bad)} ({expr})"
        used |= names
    for var in dashboard["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        if var["type"] == "query":
            for name in re.findall(r"label_values\((\w+)", q):
                assert _allowed(name), name
    # The operator series the brief names are used.
    assert {"wattserve_operator_desired_replicas",
            "wattserve_operator_predicted_p95_seconds"} <= used


def test_grouping_labels_exist(dashboard: dict[str, Any]) -> None:
    """`by (...)` labels are serving labels, `le`, `source` or the PodMonitor's `node`."""
    allowed = SERVING_LABELS | {"le", "node"}
    for title, expr in _targets(dashboard):
        for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            labels = {g.strip() for g in group.split(",") if g.strip()}
            assert labels <= allowed, f"{title}: {labels - allowed}"


@pytest.mark.parametrize(("words", "metric"), [
    (("request rate",), "wattserve_requests_total"),
    (("p95", "slo"), "wattserve_request_duration_seconds_bucket"),
    (("time to first token",), "wattserve_time_to_first_token_seconds_bucket"),
    (("replicas", "desired", "ready", "pool"), "wattserve_operator_desired_replicas"),
    (("j/token",), "wattserve_energy_joules_total"),
    (("$/hour",), "wattserve_requests_in_flight"),
    (("gco2/hour",), "wattserve_energy_joules_total"),
])
def test_required_panels(dashboard: dict[str, Any], words: tuple[str, ...], metric: str) -> None:
    panels = [p for p in dashboard["panels"]
              if all(w in p["title"].lower() for w in words)]
    assert len(panels) == 1, f"no single panel titled with {words}"
    exprs = " ".join(t["expr"] for t in panels[0]["targets"])
    assert metric in exprs


def test_slo_line_and_predicted_p95() -> None:
    dash = _dashboard({"dashboard": {"enabled": True, "sloMs": 750}})
    (panel,) = [p for p in dash["panels"] if "SLO" in p["title"]]
    exprs = [t["expr"] for t in panel["targets"]]
    assert "$slo_ms / 1000" in exprs
    assert any("wattserve_operator_predicted_p95_seconds" in e for e in exprs)
    slo = next(v for v in dash["templating"]["list"] if v["name"] == "slo_ms")
    assert slo["query"] == "750"


def test_per_pool_prices_and_carbon_from_values() -> None:
    dash = _dashboard(files=(POOLS_VALUES,))
    exprs = dict(_targets(dash))
    usd = next(e for t, e in exprs.items() if "$/hour" in t)
    co2 = next(e for t, e in exprs.items() if "gCO2/hour" in t)
    pools = yaml.safe_load(POOLS_VALUES.read_text())["servingPools"]
    for pool in pools:
        assert (f'label_replace(vector({pool["spec"]["pricing"]["usdPerNodeHour"]}), '
                f'"pool", "{pool["name"]}", "", "")') in usd
        assert (f'label_replace(vector({pool["spec"]["carbon"]["gramsCO2PerKWh"]}), '
                f'"pool", "{pool["name"]}", "", "")') in co2
    # Pools not in the values fall back to the dashboard variables.
    assert usd.endswith("* $usd_per_node_hour)")
    assert co2.endswith("* $grams_co2_per_kwh)")


def test_no_pools_uses_variables_only() -> None:
    exprs = dict(_targets(_dashboard()))
    usd = next(e for t, e in exprs.items() if "$/hour" in t)
    assert "label_replace" not in usd and usd.endswith("* $usd_per_node_hour")
