"""operator.leaderElection: the Lease the replicas contend for reaches the operator, more
than one replica needs it, and updates roll only when it is on."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import NAMESPACE, RELEASE, RenderError, one, render


def _env(docs: list[dict[str, Any]]) -> dict[str, str]:
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_the_lease_in_the_release_namespace_reaches_the_operator() -> None:
    env = _env(render())
    assert env["WATTSERVE_LEADER_ELECTION_LEASE"] == f"{NAMESPACE}/{RELEASE}-wattserve-leader"
    assert env["WATTSERVE_LEADER_ELECTION_LEASE_SECONDS"] == "15"
    env = _env(render({"operator": {"leaderElection": {"leaseDurationSeconds": 30}}}))
    assert env["WATTSERVE_LEADER_ELECTION_LEASE_SECONDS"] == "30"


def test_several_replicas_roll_with_a_surge_and_no_gap() -> None:
    deploy = one(render({"operator": {"replicas": 3}}), "Deployment")
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_without_leader_election_the_pod_is_recreated_and_no_lease_is_named() -> None:
    docs = render({"operator": {"leaderElection": {"enabled": False}}})
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert not {"WATTSERVE_LEADER_ELECTION_LEASE",
                "WATTSERVE_LEADER_ELECTION_LEASE_SECONDS"} & set(_env(docs))


@pytest.mark.parametrize("replicas", [2, 5])
def test_more_than_one_replica_without_leader_election_is_refused_naming_the_values(
        replicas: int) -> None:
    with pytest.raises(RenderError) as err:
        render({"operator": {"replicas": replicas, "leaderElection": {"enabled": False}}})
    msg = str(err.value)
    assert f"operator.replicas: {replicas} replicas" in msg
    assert "operator.leaderElection.enabled" in msg


@pytest.mark.parametrize("replicas", [0, 1])
def test_one_replica_or_none_needs_no_leader_election(replicas: int) -> None:
    docs = render({"operator": {"replicas": replicas, "leaderElection": {"enabled": False}}})
    assert one(docs, "Deployment")["spec"]["replicas"] == replicas
