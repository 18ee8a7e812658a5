"""A child's name held by someone else's object is reported, never taken over; Ready waits
for a rollout to finish (found on a live dev cluster: a user's Service was rewritten to
select the model's pods and then garbage-collected with the ModelDeployment)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import create_autospec

import pytest
from wattserve.controller.cache import ChildCache
from wattserve.controller.childwrites import apply_child
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.reconcile.health import deployment_health

KEY = ("team-a", "chat")
SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "chat", "namespace": "team-a"}, "spec": {"ports": []}}
CONFLICT = ApiError(409, 'Apply failed with 1 conflict: conflict with "kubectl-create" '
                         "using v1: .spec.selector")


def _owned(owner: str) -> dict[str, Any]:
    return {**SERVICE, "metadata": {
        **SERVICE["metadata"], "resourceVersion": "5",
        "ownerReferences": [{"apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
                             "name": owner, "uid": f"uid-{owner}", "controller": True}]}}


def _api(live_managers: list[str] | None = None) -> Any:
    api = create_autospec(KubeApi, instance=True)

    async def apply(obj: Any, force: bool = True) -> Any:
        if not force and live_managers is not None:
            raise CONFLICT
        return obj

    async def get(path: str) -> Any:
        assert path == "/api/v1/namespaces/team-a/services/chat"
        return {"metadata": {"managedFields": [{"manager": m} for m in live_managers or []]}}

    api.apply.side_effect = apply
    api.get.side_effect = get
    return api


def _run(api: Any, cache: ChildCache, mds: dict[Any, Any]) -> Any:
    return asyncio.run(apply_child(api, cache, mds, KEY, SERVICE))


def test_an_object_someone_else_wrote_is_a_conflict_not_a_takeover() -> None:
    api = _api(["kubectl-create"])
    with pytest.raises(ApiError, match=r"^HTTP 409: Service team-a/chat exists and is not "
                                       r"wattserve's: delete it or rename the ModelDeployment"):
        _run(api, ChildCache(), {})
    assert [c.kwargs.get("force") for c in api.apply.call_args_list] == [False]


def test_a_child_wattserve_wrote_before_is_repaired_even_out_of_the_cache() -> None:
    api = _api(["kubectl-label", "wattserve"])  # its labels edited away: the watch dropped it
    assert _run(api, ChildCache(), {}) == SERVICE
    assert [c.kwargs.get("force") for c in api.apply.call_args_list] == [False, True]


def test_our_cached_child_is_applied_with_force_in_one_request() -> None:
    cache = ChildCache()
    cache.upsert(_owned("chat"))
    api = _api(["kubectl-edit"])
    assert _run(api, cache, {KEY: {}}) == SERVICE
    assert [c.kwargs.get("force") for c in api.apply.call_args_list] == [True]
    api.get.assert_not_called()


def test_a_child_another_model_deployment_controls_is_left_alone() -> None:
    """`ws-<name>-<hash>` of one ModelDeployment can be another's own name."""
    cache = ChildCache()
    cache.upsert(_owned("chat.v2"))
    api = _api()
    with pytest.raises(ApiError, match=r"belongs to ModelDeployment chat\.v2"):
        _run(api, cache, {KEY: {}, ("team-a", "chat.v2"): {}})
    api.apply.assert_not_called()


def test_ready_waits_until_no_replica_of_the_old_template_is_left() -> None:
    dep = {"metadata": {"generation": 2},
           "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
                      "availableReplicas": 1, "readyReplicas": 1}}
    health = deployment_health(dep, 1)
    assert not health.ready and "rollout in progress (1 old)" in health.message
    dep["status"] |= {"replicas": 1}
    assert deployment_health(dep, 1).ready


def test_a_hand_renumbered_port_that_the_apply_cannot_merge_is_reset() -> None:
    """kubectl renumbered the `http` port: a new list-map element owned by kubectl, and ours
    beside it duplicates the name (422). A merge patch of our spec replaces the list."""
    cache = ChildCache()
    cache.upsert(_owned("chat"))
    api = create_autospec(KubeApi, instance=True)
    calls: list[str] = []

    async def apply(obj: Any, force: bool = True) -> Any:
        calls.append("apply")
        if calls.count("apply") == 1:
            raise ApiError(422, 'Service "chat" is invalid: spec.ports[1].name: '
                                'Duplicate value: "http"')
        return obj

    async def patch(api_version: str, kind: str, ns: str, name: str, body: Any) -> Any:
        calls.append("merge-patch")
        assert (kind, ns, name, body) == ("Service", "team-a", "chat", {"spec": {"ports": []}})
        return body

    api.apply.side_effect = apply
    api.patch.side_effect = patch
    assert _run(api, cache, {KEY: {}}) == SERVICE
    assert calls == ["apply", "merge-patch", "apply"]


def test_one_steady_message_for_a_crash_loop_and_for_an_image_that_cannot_be_pulled() -> None:
    """The kubelet's messages name the pod and the back-off, and a crash-looping container
    runs between its crashes: Degraded flapped and posted a Warning on every cycle."""
    from wattserve.reconcile.health import pod_problems

    def pod(state: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"metadata": {"name": "chat-1"}, "status": {"containerStatuses": [
            {"name": "serving", "image": "ghcr.io/x/serving:1", "state": state, **extra}]}}

    crashed = {"restartCount": 3, "ready": False,
               "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}
    messages = {
        problem.message
        for state in ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s "
                                   "restarting failed container=serving pod=chat-1_ns(u1)"}},
                      {"running": {"startedAt": "2026-12-03T10:00:00Z"}},
                      {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s "
                                   "restarting failed container=serving pod=chat-1_ns(u1)"}})
        for problem in pod_problems([pod(state, **crashed)])}
    assert messages == {"container serving: CrashLoopBackOff: last exit Error (code 1)"}
    pulls = {problem.message
             for reason, text in (("ErrImagePull", "rpc error: not found"),
                                  ("ImagePullBackOff", 'Back-off pulling image "x"'))
             for problem in pod_problems([pod({"waiting": {"reason": reason,
                                                           "message": text}})])}
    assert pulls == {"container serving: image 'ghcr.io/x/serving:1' cannot be pulled "
                     "(kubectl describe pod shows the registry's answer)"}
    healthy = pod({"running": {}}, restartCount=3, ready=True, lastState=crashed["lastState"])
    assert pod_problems([healthy]) == []
