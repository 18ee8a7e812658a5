"""The ClusterRole grants exactly what the operator needs: no wildcards, secrets or exec."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .helmutil import CHART, NAMESPACE, by_kind, one, render

# (apiGroup, resource) -> verbs the operator must have.
REQUIRED: dict[tuple[str, str], set[str]] = {
    # patch: the scaler-state and idle-state annotations (the operator's memory)
    ("wattserve.dev", "modeldeployments"): {"get", "list", "watch", "patch"},
    ("wattserve.dev", "modeldeployments/status"): {"get", "patch"},
    ("wattserve.dev", "servingpools"): {"get", "list", "watch"},
    ("wattserve.dev", "servingpools/status"): {"get", "patch"},  # what the fleet books there
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "nodes"): {"get", "list", "watch"},  # pool capacity (fleet placement)
    ("", "events"): {"create", "patch"},  # patch: the count of an Event that recurs
    ("ray.io", "rayservices"): {"get", "list", "watch", "create", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "patch",
                                               "delete"},
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch", "create", "patch", "delete"},
}

# Granted only in the release namespace (a Role), only with leader election on.
LEASE_REQUIRED: dict[tuple[str, str], set[str]] = {
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},
}

FORBIDDEN_RESOURCES = {"secrets", "pods/exec", "pods/attach", "pods/portforward",
                       "serviceaccounts/token", "nodes/proxy"}
ESCALATING_VERBS = {"escalate", "bind", "impersonate", "*"}


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


def _walk_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (*_walk_strings(k), *_walk_strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _walk_strings(v)]
    return []


@pytest.fixture(scope="module")
def role() -> dict[str, Any]:
    return one(render(), "ClusterRole")


def test_no_wildcard_anywhere(role: dict[str, Any]) -> None:
    for s in _walk_strings(role["rules"]):
        assert "*" not in s, f"wildcard in ClusterRole rules: {s!r}"


def test_no_secrets_exec_or_escalation(role: dict[str, Any]) -> None:
    for rule in role["rules"]:
        assert not set(rule.get("resources", [])) & FORBIDDEN_RESOURCES, rule
        assert not set(rule["verbs"]) & ESCALATING_VERBS, rule
        assert "nonResourceURLs" not in rule, rule
        assert "resourceNames" not in rule or rule["resourceNames"], rule
    grants = _grants(role["rules"])
    assert not [k for k in grants if k[1].startswith("secrets")]
    assert ("", "pods/exec") not in grants


@pytest.mark.parametrize(("key", "verbs"), list(REQUIRED.items()),
                         ids=[f"{g or 'core'}/{r}" for g, r in REQUIRED])
def test_required_rule(role: dict[str, Any], key: tuple[str, str], verbs: set[str]) -> None:
    granted = _grants(role["rules"]).get(key, set())
    assert verbs <= granted, f"{key}: missing {sorted(verbs - granted)}"


def test_nothing_beyond_the_required(role: dict[str, Any]) -> None:
    """Least privilege: every grant is one the operator needs (update REQUIRED with rules)."""
    grants = _grants(role["rules"])
    extra = {k: sorted(v - REQUIRED.get(k, set())) for k, v in grants.items()
             if v - REQUIRED.get(k, set())}
    assert not extra, f"grants beyond what the operator uses: {extra}"


def _lease_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in by_kind(docs, "Role")
                if r["metadata"]["name"].endswith("-leader-election"))


def test_rules_defined_in_one_place(role: dict[str, Any]) -> None:
    """The ClusterRole and the lease Role are .Values.rbac.rules verbatim, split by
    rbac.releaseNamespaceResources (the single place to adjust)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    release_only = set(values["rbac"]["releaseNamespaceResources"])
    rules = values["rbac"]["rules"]
    assert role["rules"] == [r for r in rules if not set(r["resources"]) & release_only]
    assert _lease_role(render())["rules"] == [r for r in rules
                                             if set(r["resources"]) & release_only]
    templates = "".join(p.read_text() for p in (CHART / "templates").glob("*"))
    assert "verbs:" not in templates, "RBAC verbs must live only in values.yaml rbac.rules"


def test_rbac_disabled() -> None:
    kinds = {d["kind"] for d in render({"rbac": {"create": False}})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def test_the_only_namespaced_role_is_the_lease_in_the_release_namespace() -> None:
    docs = render()
    roles, bindings = by_kind(docs, "Role"), by_kind(docs, "RoleBinding")
    assert [r["metadata"]["namespace"] for r in roles] == [NAMESPACE]
    assert _grants(roles[0]["rules"]) == LEASE_REQUIRED  # no list/watch/delete, no more
    assert [b["roleRef"]["name"] for b in bindings] == [roles[0]["metadata"]["name"]]
    assert bindings[0]["metadata"]["namespace"] == NAMESPACE
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    assert bindings[0]["subjects"] == [{"kind": "ServiceAccount", "name": sa,
                                        "namespace": NAMESPACE}]


def test_without_leader_election_there_is_no_namespaced_role() -> None:
    docs = render({"operator": {"leaderElection": {"enabled": False}}})
    assert not {d["kind"] for d in docs} & {"Role", "RoleBinding"}
    assert ("coordination.k8s.io", "leases") not in _grants(one(docs, "ClusterRole")["rules"])
