"""Object names stay unique and valid for any release name Helm accepts: suffixed names
(<fullname>-activator, -metrics, -serving, -dashboard) cut the base, never the suffix."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from .helmutil import RenderError, render
from .k8snames import name_problems

EVERYTHING = {
    "activator": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "dashboard": {"enabled": True},
    "serving": {"networkPolicy": {"enabled": True, "namespaces": ["team-a"]}},
}


def _keys(docs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
            for d in docs]


def _check(docs: list[dict[str, Any]]) -> None:
    dup = [k for k, n in Counter(_keys(docs)).items() if n > 1]
    assert not dup, f"objects with the same kind, namespace and name: {dup}"
    problems = [p for d in docs for p in name_problems(d)]
    assert not problems, problems


def _named(docs: list[dict[str, Any]], kind: str, component: str) -> str:
    """The name of the one object of this kind that is (not) the activator's."""
    (d,) = [d for d in docs if d["kind"] == kind and (d["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "activator") == (component == "activator")]
    name: str = d["metadata"]["name"]
    return name


LONG_RELEASES = {n: ("r" * (n - 3)) + "-ab" for n in (40, 52, 53)}


@pytest.mark.parametrize("length", sorted(LONG_RELEASES))
@pytest.mark.parametrize("namespaces", [[], ["team-a"]], ids=["cluster", "scoped"])
def test_long_release_names_give_unique_valid_names(length: int, namespaces: list[str]) -> None:
    release = LONG_RELEASES[length]
    assert len(release) == length
    docs = render({**EVERYTHING, "operator": {"namespaces": namespaces}}, release=release)
    _check(docs)
    for kind in ("ServiceAccount", "Deployment"):
        assert _named(docs, kind, "activator") != _named(docs, kind, "operator")
    assert _named(docs, "Deployment", "activator").endswith("-activator")
    svc = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert len(svc) == 2 and all(n.endswith(("-activator", "-metrics")) for n in svc)


@pytest.mark.parametrize("length", [62, 63])
def test_long_fullname_override_gives_unique_valid_names(length: int) -> None:
    docs = render({**EVERYTHING, "fullnameOverride": "f" * length})
    _check(docs)
    roles = [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"]
    assert len(roles) == len(set(roles)) == 2
    assert "f" * length in roles


def test_the_operator_is_pointed_at_the_activator_service_under_a_long_name() -> None:
    docs = render(EVERYTHING, release=LONG_RELEASES[53])
    (svc,) = [d for d in docs if d["kind"] == "Service"
              and d["metadata"]["name"].endswith("-activator")]
    op = next(d for d in docs if d["kind"] == "Deployment"
              and d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator")
    env = {e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0][
        "env"]}
    assert env["WATTSERVE_ACTIVATOR_SERVICE"] == (
        f"{svc['metadata']['namespace']}/{svc['metadata']['name']}")


def test_a_release_name_over_53_characters_is_refused_by_helm() -> None:
    with pytest.raises(RenderError, match="53"):
        render(release="r" * 63)
