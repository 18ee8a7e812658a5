"""Leader election's decisions (client-go's rules) and the elector's fault handling.

The elector against a real API server, two and three replicas contending, is
tests/integration/test_operator_leader_election.py; here the pure rules, and the faults a real
server will not produce on demand (an API server gone for longer than the renew deadline).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any
from unittest.mock import create_autospec

import pytest
from wattserve.controller.cli import run
from wattserve.controller.config import env_defaults, make_identity, pod_identity_prefix
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.controller.leader import LeaderElector
from wattserve.reconcile.lease import (
    Action,
    LeaseRecord,
    LeaseTiming,
    decide,
    micro_time,
    parse_lease_ref,
    released,
)
from wattserve.render import SettingsError

NOW = datetime.datetime(2026, 12, 2, 7, 0, 0, 123456, tzinfo=datetime.UTC)
TIMING = LeaseTiming(15)


def held_by(holder: str, duration: int = 15, version: str = "7") -> LeaseRecord:
    return LeaseRecord(holder, duration, acquire_time="2026-12-02T06:00:00.000000Z",
                       renew_time="2026-12-02T06:59:59.000000Z", transitions=3,
                       resource_version=version)


def test_no_lease_is_created_held_by_us() -> None:
    step = decide(None, "me", TIMING, NOW, 0.0)
    assert step.action is Action.CREATE and step.holder == "me"
    assert step.record == LeaseRecord("me", 15, acquire_time="2026-12-02T07:00:00.123456Z",
                                      renew_time="2026-12-02T07:00:00.123456Z")


def test_our_lease_is_renewed_keeping_acquire_time_transitions_and_version() -> None:
    step = decide(held_by("me"), "me", TIMING, NOW, 30.0)
    assert step.action is Action.RENEW
    assert step.record is not None
    assert step.record.renew_time == micro_time(NOW)
    assert (step.record.acquire_time, step.record.transitions,
            step.record.resource_version) == ("2026-12-02T06:00:00.000000Z", 3, "7")


def test_a_live_lease_of_another_is_followed() -> None:
    step = decide(held_by("other"), "me", TIMING, NOW, 14.9)
    assert step.action is Action.FOLLOW and step.holder == "other" and step.record is None


def test_an_expired_lease_is_taken_over_with_the_version_read() -> None:
    step = decide(held_by("other"), "me", TIMING, NOW, 15.0)
    assert step.action is Action.ACQUIRE and step.record is not None
    assert (step.record.holder, step.record.transitions, step.record.resource_version,
            step.record.acquire_time) == ("me", 4, "7", micro_time(NOW))


def test_the_holders_declared_duration_is_what_expires() -> None:
    assert decide(held_by("other", 60), "me", TIMING, NOW, 20.0).action is Action.FOLLOW
    assert decide(held_by("other", 60), "me", TIMING, NOW, 60.0).action is Action.ACQUIRE


def test_a_lease_held_by_an_earlier_process_of_this_pod_is_taken_at_once() -> None:
    """The container restarted (OOM, crash): the process that held the lease is gone, so
    waiting out its lease would only leave the cluster without an operator for longer."""
    pod = "wattserve@ws-wattserve-7d9f-abcde/"
    step = decide(held_by(pod + "0badf00d"), pod + "c0ffee00", TIMING, NOW, 0.0, pod)
    assert step.action is Action.ACQUIRE and step.record is not None
    assert step.record.transitions == 4
    # another pod whose name merely starts alike, or no pod name known: the usual wait
    other = "wattserve@ws-wattserve-7d9f-abcdef/0badf00d"
    assert decide(held_by(other), pod + "c0ffee00", TIMING, NOW, 0.0, pod).action \
        is Action.FOLLOW
    assert decide(held_by(pod + "0badf00d"), pod + "c0ffee00", TIMING, NOW, 0.0).action \
        is Action.FOLLOW


def test_only_a_pod_name_from_the_downward_api_makes_an_identity_prefix() -> None:
    env = {"WATTSERVE_OPERATOR_POD_NAME": "ws-wattserve-7d9f-abcde"}
    assert pod_identity_prefix(env) == "wattserve@ws-wattserve-7d9f-abcde/"
    first, second = make_identity(env), make_identity(env)
    assert first != second and first.startswith(pod_identity_prefix(env))
    assert pod_identity_prefix({}) == ""  # a hostname may be shared by several processes


def test_wall_clocks_are_never_compared() -> None:
    """A renewTime an hour old (another node's clock) is no reason to take the lease: only
    this instance's own time since the record last changed is."""
    stale = LeaseRecord("other", 15, renew_time="2026-12-02T06:00:00.000000Z",
                        resource_version="9")
    assert decide(stale, "me", TIMING, NOW, 0.0).action is Action.FOLLOW


def test_a_released_lease_is_taken_at_once() -> None:
    rel = released(held_by("other"), NOW)
    assert rel.holder == "" and rel.duration_s == 1 and rel.transitions == 3
    step = decide(rel, "me", TIMING, NOW, 0.0)
    assert step.action is Action.ACQUIRE and step.holder == "me"


def test_lease_body_round_trips_and_junk_is_read_as_defaults() -> None:
    rec = held_by("me")
    body = rec.to_body("ops", "wattserve", {"a": "b"})
    assert body["apiVersion"] == "coordination.k8s.io/v1" and body["kind"] == "Lease"
    assert body["metadata"] == {"name": "wattserve", "namespace": "ops",
                                "resourceVersion": "7", "labels": {"a": "b"}}
    assert LeaseRecord.from_body(body) == rec
    junk = LeaseRecord.from_body({"metadata": [], "spec": {
        "holderIdentity": 5, "leaseDurationSeconds": "15", "leaseTransitions": True}})
    assert junk == LeaseRecord("", 15)
    assert LeaseRecord.from_body({"spec": None}) == LeaseRecord("", 15)
    assert "holderIdentity" not in released(rec, NOW).to_body("ops", "w")["spec"]


def test_micro_time_is_rfc3339_utc_with_microseconds() -> None:
    east = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    assert micro_time(east) == "2026-12-02T07:00:00.123456Z"


def test_timing_scales_client_go_defaults() -> None:
    assert (TIMING.renew_deadline_s, TIMING.retry_s) == (10.0, 2.0)
    short = LeaseTiming(3)
    assert short.renew_deadline_s == 2.0 and short.retry_s == pytest.approx(0.4)


@pytest.mark.parametrize("raw", ["wattserve", "/name", "ns/", "Ns/name", "ns/Name",
                                 "ns/a/b", "n_s/name", f"{'a' * 64}/name"])
def test_bad_lease_references_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_lease_ref(raw)


def test_lease_reference_parses() -> None:
    assert parse_lease_ref(" wattserve-system/wattserve.leader ") == (
        "wattserve-system", "wattserve.leader")


def test_env_names_the_variable_and_empty_is_off() -> None:
    assert env_defaults({})["leader_lease"] is None
    assert env_defaults({"WATTSERVE_LEADER_ELECTION_LEASE": "ops/ws"})["leader_lease"] == (
        "ops", "ws")
    with pytest.raises(SettingsError, match="WATTSERVE_LEADER_ELECTION_LEASE: must be"):
        env_defaults({"WATTSERVE_LEADER_ELECTION_LEASE": "ws"})
    with pytest.raises(SettingsError, match="WATTSERVE_LEADER_ELECTION_LEASE_SECONDS"):
        env_defaults({"WATTSERVE_LEADER_ELECTION_LEASE_SECONDS": "1"})


def test_cli_refuses_a_bad_lease_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--leader-election-lease", "no-slash"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--leader-election-lease" in err
    assert run(["--leader-election-lease", "ops/ws", "--leader-election-lease-seconds",
                "1"]) == 2
    assert "--leader-election-lease-seconds must be >= 2" in capsys.readouterr().err


# ---- the elector's faults (a KubeApi built from the real class, for fault injection) ------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _elector(api: Any, clock: Clock, events: list[str]) -> LeaderElector:
    return LeaderElector(api, "ops", "ws", "me", LeaseTiming(15),
                         on_lead=lambda: events.append("lead"),
                         on_lost=lambda why: events.append(f"lost: {why}"), clock=clock)


def _api() -> Any:
    api = create_autospec(KubeApi, instance=True)
    api.get.side_effect = ApiError(404, "not found")
    api.request.side_effect = lambda method, path, body, verb: {
        **body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
    return api


def test_a_leader_that_cannot_renew_for_the_deadline_steps_down() -> None:
    api, clock, events = _api(), Clock(), []
    elector = _elector(api, clock, events)
    assert asyncio.run(elector.try_once()) is None and events == ["lead"]
    assert api.request.call_args.args[0] == "POST"
    api.get.side_effect = ApiError(0, "connection refused")  # the API server is gone
    clock.now += 9.9
    assert asyncio.run(elector.try_once()) is None and elector.leading

    async def run_until_lost() -> None:
        clock.now += 0.2  # 10.1 s since the last renewal > the 10 s deadline
        await asyncio.wait_for(elector.run(), 5)

    asyncio.run(run_until_lost())
    assert events == ["lead", "lost: no renewal for 10s"] and not elector.leading


def test_a_leader_that_sees_another_holder_steps_down_at_once() -> None:
    api, clock, events = _api(), Clock(), []
    elector = _elector(api, clock, events)
    asyncio.run(elector.try_once())
    api.get.side_effect = None
    api.get.return_value = held_by("other", version="2").to_body("ops", "ws")
    assert asyncio.run(elector.try_once()) == "the lease is held by other"


def test_a_conflict_is_a_lost_race_not_an_error() -> None:
    api, clock, events = _api(), Clock(), []
    api.request.side_effect = ApiError(409, "the object has been modified")
    elector = _elector(api, clock, events)
    assert asyncio.run(elector.try_once()) is None
    assert not elector.leading and events == []


def test_release_writes_no_holder_once_and_only_when_leading() -> None:
    api, clock, events = _api(), Clock(), []
    elector = _elector(api, clock, events)
    asyncio.run(elector.release())
    api.request.assert_not_called()
    asyncio.run(elector.try_once())
    asyncio.run(elector.release())
    method, _path = api.request.call_args.args
    body = api.request.call_args.kwargs["body"]
    assert method == "PUT" and "holderIdentity" not in body["spec"]
    assert body["spec"]["leaseDurationSeconds"] == 1 and not elector.leading
