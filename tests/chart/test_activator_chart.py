"""The activator in the chart: off by default; when on, least privilege and the operator
knows where it is."""

from __future__ import annotations

from typing import Any

from .helmutil import render

ON = {"activator": {"enabled": True}}


def by_kind(docs: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"].get("labels", {}).get(
        "app.kubernetes.io/component") == component)


def test_off_by_default() -> None:
    docs = render()
    assert not [d for d in docs if "activator" in d["metadata"]["name"]]
    op = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"] for e in op["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "WATTSERVE_ACTIVATOR_SERVICE" not in env


def test_the_activator_may_only_read_services_list_pods_and_patch_modeldeployments() -> None:
    docs = render(ON)
    role = next(d for d in docs if d["kind"] == "ClusterRole"
                and d["metadata"]["name"].endswith("-activator"))
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"]
              for g in rule["apiGroups"] for r in rule["resources"]}
    assert grants == {("", "services"): {"get"}, ("", "pods"): {"list"},
                      ("wattserve.dev", "modeldeployments"): {"patch"}}
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding"
                   and d["metadata"]["name"].endswith("-activator"))
    assert binding["subjects"][0]["name"] == role["metadata"]["name"]


def test_the_operator_is_told_the_activator_service_and_it_exists() -> None:
    docs = render(ON)
    op = by_kind(docs, "Deployment", "operator")
    env = {e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0][
        "env"]}
    svc = by_kind(docs, "Service", "activator")
    assert env["WATTSERVE_ACTIVATOR_SERVICE"] == (
        f"{svc['metadata']['namespace']}/{svc['metadata']['name']}")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8012, "admin": 9091}
    dep = by_kind(docs, "Deployment", "activator")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == svc["metadata"]["name"]
    c = pod["containers"][0]
    assert c["command"] == ["python3", "-m", "wattserve_activator"]
    assert c["image"] == op["spec"]["template"]["spec"]["containers"][0]["image"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    labels = dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"] == labels


def test_with_watched_namespaces_the_activator_gets_roles_there_and_nothing_cluster_wide() -> None:
    docs = render({"activator": {"enabled": True}, "operator": {"namespaces": ["a", "b"]}})
    mine = [d for d in docs if d["metadata"]["name"].endswith("-activator")]
    assert not [d for d in mine if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {d["metadata"]["namespace"]: d for d in mine if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"]: d for d in mine if d["kind"] == "RoleBinding"}
    assert sorted(roles) == sorted(bindings) == ["a", "b"]
    cluster_rules = render(ON)
    expected = next(d for d in cluster_rules if d["kind"] == "ClusterRole"
                    and d["metadata"]["name"].endswith("-activator"))["rules"]
    assert all(role["rules"] == expected for role in roles.values())
    assert all(b["roleRef"]["kind"] == "Role" for b in bindings.values())


def test_the_activator_pod_gets_no_service_link_env_that_would_clash_with_its_settings() -> None:
    # The Service <release>-activator would inject WATTSERVE_ACTIVATOR_PORT=tcp://... (seen on
    # the real node: the activator refused to start).
    pod = by_kind(render(ON), "Deployment", "activator")["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False


def test_with_watched_namespaces_the_operator_may_list_the_activator_slices_in_its_namespace(
) -> None:
    docs = render({"activator": {"enabled": True}, "operator": {"namespaces": ["a", "b"]}})
    sa = next(d for d in docs if d["kind"] == "ServiceAccount"
              and d["metadata"]["labels"].get("app.kubernetes.io/component") != "activator")
    ns = sa["metadata"]["namespace"]
    roles = {d["metadata"]["name"]: d for d in docs
             if d["kind"] == "Role" and d["metadata"]["namespace"] == ns}
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == ns
                and {"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                     "namespace": ns} in d["subjects"]]
    granted = {(g, r, v) for b in bindings for rule in roles[b["roleRef"]["name"]]["rules"]
               for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert {("discovery.k8s.io", "endpointslices", v) for v in ("get", "list", "watch")} <= granted
    # Not needed (the ClusterRole covers it) without operator.namespaces or activator.
    for values in ({"activator": {"enabled": True}}, {"operator": {"namespaces": ["a"]}}):
        assert not [d for d in render(values) if d["kind"] == "Role"
                    and d["metadata"]["namespace"] == ns
                    and d["metadata"]["name"].endswith("-endpointslices")]


def test_the_serving_network_policy_admits_the_activator_pods_on_the_serving_port() -> None:
    docs = render({"activator": {"enabled": True},
                   "serving": {"networkPolicy": {"enabled": True, "namespaces": ["team-a"]}}})
    pod_labels = by_kind(docs, "Deployment", "activator")["spec"]["template"]["metadata"][
        "labels"]
    act_ns = by_kind(docs, "Deployment", "activator")["metadata"]["namespace"]
    (np,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    admitted = [r for r in np["spec"]["ingress"] for peer in r["from"]
                if peer.get("namespaceSelector") == {
                    "matchLabels": {"kubernetes.io/metadata.name": act_ns}}
                and peer.get("podSelector", {}).get("matchLabels", {"x": "y"}).items()
                <= pod_labels.items()]
    assert admitted and all({"port": 8000, "protocol": "TCP"} in r["ports"] for r in admitted)
    off = render({"serving": {"networkPolicy": {"enabled": True, "namespaces": ["team-a"]}}})
    (np_off,) = [d for d in off if d["kind"] == "NetworkPolicy"]
    assert len(np_off["spec"]["ingress"]) == len(np["spec"]["ingress"]) - 1


def test_the_activator_pods_take_placement_and_pull_secrets_like_the_operator() -> None:
    docs = render({"operator": {"imagePullSecrets": ["regcred"]},
                   "activator": {"enabled": True, "nodeSelector": {"pool": "system"},
                                 "tolerations": [{"key": "sys", "operator": "Exists"}],
                                 "priorityClassName": "system-cluster-critical"}})
    pod = by_kind(docs, "Deployment", "activator")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]  # inherited: same image
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == [{"key": "sys", "operator": "Exists"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    own = render({"operator": {"imagePullSecrets": ["regcred"]},
                  "activator": {"enabled": True, "imagePullSecrets": ["act-cred"]}})
    assert by_kind(own, "Deployment", "activator")["spec"]["template"]["spec"][
        "imagePullSecrets"] == [{"name": "act-cred"}]


def test_without_chart_rbac_or_service_accounts_the_activator_creates_neither() -> None:
    docs = render({"serviceAccount": {"create": False, "name": "op-sa"},
                   "rbac": {"create": False},
                   "activator": {"enabled": True, "serviceAccountName": "act-sa"}})
    made = {d["kind"] for d in docs if d["metadata"]["name"].endswith("-activator")}
    assert made == {"Deployment", "Service"}  # no ServiceAccount, (Cluster)Role or binding
    pod = by_kind(docs, "Deployment", "activator")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "act-sa"


def test_a_deleted_activator_keeps_accepting_while_its_endpoint_goes_then_answers_what_it_holds(
) -> None:
    values = {"activator": {"enabled": True, "deadlineSeconds": 90}}
    pod = by_kind(render(values), "Deployment", "activator")["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["terminationGracePeriodSeconds"] == 5 + 90 + 5  # preStop, deadline, exit
