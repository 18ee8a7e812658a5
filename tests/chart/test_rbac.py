"""The ClusterRole grants exactly what the operator needs: no wildcards, secrets or exec."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .helmutil import CHART, one, render

# (apiGroup, resource) -> verbs the operator must have.
REQUIRED: dict[tuple[str, str], set[str]] = {
    ("wattserve.dev", "modeldeployments"): {"get", "list", "watch"},
    ("wattserve.dev", "modeldeployments/status"): {"get", "patch"},
    ("wattserve.dev", "servingpools"): {"get", "list", "watch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "nodes"): {"get", "list", "watch"},  # pool capacity (fleet placement)
    ("", "events"): {"create", "patch"},
    ("ray.io", "rayservices"): {"get", "list", "watch", "create", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "patch",
                                               "delete"},
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch", "create", "patch", "delete"},
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


def test_rules_defined_in_one_place(role: dict[str, Any]) -> None:
    """The ClusterRole is .Values.rbac.rules verbatim (the single place to adjust)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert role["rules"] == values["rbac"]["rules"]
    templates = "".join(p.read_text() for p in (CHART / "templates").glob("*"))
    assert "verbs:" not in templates, "RBAC verbs must live only in values.yaml rbac.rules"


def test_rbac_disabled() -> None:
    kinds = {d["kind"] for d in render({"rbac": {"create": False}})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def test_no_namespaced_roles() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"Role", "RoleBinding"}
