"""Labels render as one map per object: commonLabels, then the object's own extra labels,
then the chart's labels. A key never appears twice (the API server refuses duplicate keys;
PyYAML would keep the last) and values cannot take over the chart's selector labels."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import RenderError, by_kind, one, render

SPEC = {"node": {}, "pricing": {}, "power": {}, "carbon": {}}
EVERYTHING: dict[str, Any] = {
    "activator": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "dashboard": {"enabled": True},
}

RESERVED = ["app.kubernetes.io/name", "app.kubernetes.io/instance",
            "app.kubernetes.io/component", "app.kubernetes.io/managed-by",
            "app.kubernetes.io/part-of", "app.kubernetes.io/version", "helm.sh/chart"]

# value path as the error names it -> values setting a label there
WHERE: dict[str, Any] = {
    "commonLabels": lambda k: {"commonLabels": {k: "x"}},
    "operator.podLabels": lambda k: {"operator": {"podLabels": {k: "x"}}},
    "serviceMonitor.labels": lambda k: {"serviceMonitor": {"enabled": True, "labels": {k: "x"}}},
    "podMonitor.labels": lambda k: {"podMonitor": {"enabled": True, "labels": {k: "x"}}},
    "dashboard.labels": lambda k: {"dashboard": {"enabled": True, "labels": {k: "x"}}},
    "servingPools (p1).labels": lambda k: {"servingPools": [
        {"name": "p1", "labels": {k: "x"}, "spec": SPEC}]},
}


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("key", ["app.kubernetes.io/component", "app.kubernetes.io/instance"])
def test_a_chart_label_key_in_values_is_refused_naming_the_value_and_key(
        where: str, key: str) -> None:
    with pytest.raises(RenderError) as err:
        render(WHERE[where](key))
    assert where in str(err.value) and key in str(err.value), str(err.value)


@pytest.mark.parametrize("key", RESERVED)
def test_every_chart_label_key_is_refused_in_pod_labels(key: str) -> None:
    with pytest.raises(RenderError, match=r"operator\.podLabels"):
        render({"operator": {"podLabels": {key: "x"}}})


def test_the_same_key_in_common_and_specific_labels_renders_once_the_specific_one_wins() -> None:
    docs = render({
        **EVERYTHING,  # render() refuses a duplicate key in any mapping
        "commonLabels": {"team": "common", "tier": "t1"},
        "operator": {"podLabels": {"team": "pod"}},
        "serviceMonitor": {"enabled": True, "labels": {"team": "sm", "release": "kps"}},
        "servingPools": [{"name": "p1", "labels": {"team": "pool"}, "spec": SPEC}],
    })
    (op,) = [d for d in by_kind(docs, "Deployment")
             if d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"]
    pod = op["spec"]["template"]["metadata"]["labels"]
    assert pod["team"] == "pod" and pod["tier"] == "t1"
    assert pod["app.kubernetes.io/component"] == "operator"
    sm = one(docs, "ServiceMonitor")["metadata"]["labels"]
    assert (sm["team"], sm["release"], sm["tier"]) == ("sm", "kps", "t1")
    assert one(docs, "ServingPool")["metadata"]["labels"]["team"] == "pool"
    for d in docs:
        if d["kind"] != "CustomResourceDefinition":
            assert d["metadata"]["labels"]["tier"] == "t1", d["kind"]


def test_every_selector_is_a_subset_of_the_pod_labels_with_extra_labels() -> None:
    docs = render({**EVERYTHING, "commonLabels": {"team": "a"},
                   "operator": {"podLabels": {"team": "b", "extra": "c"}}})
    deployments = by_kind(docs, "Deployment")
    assert len(deployments) == 2
    for dep in deployments:
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for svc in by_kind(docs, "Service"):
        assert any(svc["spec"]["selector"].items()
                   <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments)
