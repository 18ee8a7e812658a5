"""Object names stay unique and valid for any release name Helm accepts: suffixed names
(<fullname>-activator, -metrics, -serving, -dashboard) cut the base, never the suffix."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from .helmutil import EVERYTHING_ON, RenderError, by_kind, render
from .k8snames import name_problems


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
    docs = render({**EVERYTHING_ON, "operator": {"namespaces": namespaces}}, release=release)
    _check(docs)
    for kind in ("ServiceAccount", "Deployment"):
        assert _named(docs, kind, "activator") != _named(docs, kind, "operator")
    assert _named(docs, "Deployment", "activator").endswith("-activator")
    svc = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert len(svc) == 2 and all(n.endswith(("-activator", "-metrics")) for n in svc)


@pytest.mark.parametrize("length", [62, 63])
def test_long_fullname_override_gives_unique_valid_names(length: int) -> None:
    docs = render({**EVERYTHING_ON, "fullnameOverride": "f" * length})
    _check(docs)
    roles = [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"]
    assert len(roles) == len(set(roles)) == 2
    assert "f" * length in roles


def test_the_operator_is_pointed_at_the_activator_service_under_a_long_name() -> None:
    docs = render(EVERYTHING_ON, release=LONG_RELEASES[53])
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


SPEC = {"node": {}, "pricing": {}, "power": {}, "carbon": {}}


@pytest.mark.parametrize(("release", "namespace"), [
    ("1234", "0123"), ("a.b", "wattserve-system"), ("0.1", "1e3"), ("12e3", "true"),
    ("2024-wattserve", "007")])
def test_numeric_looking_and_dotted_release_names_give_valid_typed_names(
        release: str, namespace: str) -> None:
    docs = render({**EVERYTHING_ON, "operator": {"namespaces": ["0123", "team-a"]},
                   "servingPools": [{"name": "2024", "spec": SPEC}]},
                  release=release, namespace=namespace)
    _check(docs)  # names, namespaces and label values are strings the API server accepts
    mine = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    assert {d["metadata"]["labels"]["app.kubernetes.io/instance"] for d in mine} == {release}
    assert {d["metadata"]["namespace"] for d in mine if "namespace" in d["metadata"]} == {
        namespace, "0123", "team-a", "default"}  # default: the ServingPools' Events
    assert by_kind(docs, "ServingPool")[0]["metadata"]["name"] == "2024"
    services = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"]
    assert len(services) == 2
    # The operator is pointed at the activator Service by its real name.
    op = next(d for d in docs if d["kind"] == "Deployment"
              and d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator")
    env = {e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0][
        "env"]}
    assert env["WATTSERVE_ACTIVATOR_SERVICE"].split("/") == [
        namespace, next(s for s in services if s.endswith("-activator"))]
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert all(isinstance(s["name"], str) and s["namespace"] == namespace
                   for s in binding["subjects"])


def test_a_fullname_override_that_is_not_a_dns_name_is_refused_by_the_schema() -> None:
    with pytest.raises(RenderError, match="fullnameOverride"):
        render({"fullnameOverride": "My_Operator"})
