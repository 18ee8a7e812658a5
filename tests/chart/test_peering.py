"""kopf peering: the chart creates the peering object(s) the operator (and kopf) read, named
as the Deployment tells the operator, and RBAC lets kopf use them. Without them kopf runs
unpeered (settings.peering.mandatory = False) and every replica is active."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import NAMESPACE, by_kind, one, render


def _env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in c["env"]}


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


KOPF_VERBS = {"get", "list", "watch", "patch"}


@pytest.mark.parametrize("replicas", [1, 3])
def test_all_namespaces_gets_one_cluster_peering_named_as_the_operator_is_told(
        replicas: int) -> None:
    docs = render({"operator": {"replicas": replicas}})
    (peering,) = by_kind(docs, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert "namespace" not in peering["metadata"]
    assert peering["metadata"]["name"] == _env(docs)["WATTSERVE_PEERING_NAME"] == "wattserve"
    assert not by_kind(docs, "KopfPeering")
    # kopf reads and patches it with the operator's ServiceAccount.
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == sa
    assert _grants(one(docs, "ClusterRole")["rules"])[
        ("kopf.dev", "clusterkopfpeerings")] >= KOPF_VERBS


def test_watched_namespaces_get_one_kopf_peering_each_and_a_role_to_use_it() -> None:
    docs = render({"operator": {"replicas": 2, "namespaces": ["team-a", "team-b"],
                                "peering": {"create": True, "name": "my-peering"}}})
    assert not by_kind(docs, "ClusterKopfPeering")
    peerings = by_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == {_env(docs)["WATTSERVE_PEERING_NAME"]}
    assert _env(docs)["WATTSERVE_PEERING_NAME"] == "my-peering"
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    roles = {r["metadata"]["namespace"]: r for r in by_kind(docs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(docs, "RoleBinding")}
    for ns in ("team-a", "team-b"):
        assert _grants(roles[ns]["rules"])[("kopf.dev", "kopfpeerings")] >= KOPF_VERBS
        assert bindings[ns]["roleRef"]["name"] == roles[ns]["metadata"]["name"]
        assert bindings[ns]["subjects"] == [
            {"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


def test_peering_create_false_renders_none_but_still_names_it() -> None:
    docs = render({"operator": {"peering": {"create": False, "name": "ext"}}})
    assert not by_kind(docs, "ClusterKopfPeering") and not by_kind(docs, "KopfPeering")
    assert _env(docs)["WATTSERVE_PEERING_NAME"] == "ext"


def test_operator_disabled_renders_no_peering() -> None:
    docs = render({"operator": {"enabled": False}})
    assert not by_kind(docs, "ClusterKopfPeering") and not by_kind(docs, "KopfPeering")


def test_the_peering_name_default_is_the_operators_own_default() -> None:
    from wattserve.controller.config import OperatorConfig, env_defaults

    assert env_defaults({})["peering_name"] == OperatorConfig().peering_name
    assert one(render(), "ClusterKopfPeering")["metadata"]["name"] == OperatorConfig(
    ).peering_name
