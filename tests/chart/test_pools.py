"""ServingPools declared in values render as the documents of examples/pools.yaml."""

from __future__ import annotations

from typing import Any

import jsonschema
import yaml

from .helmutil import CHART, REPO_ROOT, by_kind, render

EXAMPLE_VALUES = CHART / "examples" / "pools-values.yaml"
EXAMPLE_POOLS = REPO_ROOT / "examples" / "pools.yaml"


def _example_pools() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(EXAMPLE_POOLS.read_text()) if d]


def test_default_values_have_no_pools() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["servingPools"] == []
    assert not by_kind(render(), "ServingPool")


def test_example_values_render_examples_pools_exactly() -> None:
    rendered = by_kind(render(files=[EXAMPLE_VALUES]), "ServingPool")
    expected = _example_pools()
    assert [p["metadata"]["name"] for p in rendered] == [p["metadata"]["name"] for p in expected]
    for got, want in zip(rendered, expected, strict=True):
        assert got["apiVersion"] == want["apiVersion"]
        assert got["kind"] == want["kind"]
        assert "namespace" not in got["metadata"]  # cluster-scoped
        # The chart adds its labels; the rest of the document is the example's.
        assert got["metadata"]["labels"]["app.kubernetes.io/part-of"] == "wattserve"
        got_meta = {k: v for k, v in got["metadata"].items() if k != "labels"}
        want_meta = {k: v for k, v in want["metadata"].items() if k != "labels"}
        assert got_meta == want_meta
        assert got["spec"] == want["spec"], got["metadata"]["name"]
        assert set(got) == set(want)


def test_rendered_pools_pass_the_crd_schema() -> None:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "wattserve.dev_servingpools.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for pool in by_kind(render(files=[EXAMPLE_VALUES]), "ServingPool"):
        jsonschema.validate(pool, schema)


def test_pool_labels_and_annotations() -> None:
    spec = _example_pools()[0]["spec"]
    docs = render({"servingPools": [
        {"name": "p1", "labels": {"team": "ml"}, "annotations": {"a": "b"}, "spec": spec},
    ]})
    (pool,) = by_kind(docs, "ServingPool")
    assert pool["metadata"]["labels"]["team"] == "ml"
    assert pool["metadata"]["annotations"] == {"a": "b"}
    assert pool["spec"] == spec
