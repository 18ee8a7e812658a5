"""The caches keep compacted copies: equal to what the watch delivered (minus
managedFields), sharing keys and short strings between objects, never aliasing the event."""

from __future__ import annotations

import json
from typing import Any

from wattserve.controller.cache import SHARED_MAX, ChildCache, compact, slim

DEPLOYMENT = json.dumps({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "m", "namespace": "ns", "resourceVersion": "7",
                 "labels": {"app.kubernetes.io/managed-by": "wattserve"},
                 "ownerReferences": [{"kind": "ModelDeployment", "name": "m",
                                      "controller": True, "uid": "u"}],
                 "managedFields": [{"manager": "wattserve", "fieldsV1": {"f:spec": {}}}]},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "server", "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": 8080}],
         "args": ["--long", "x" * (SHARED_MAX + 1)]}]}}},
})


def _decoded() -> dict[str, Any]:
    return dict(json.loads(DEPLOYMENT))


def test_a_compacted_object_equals_the_original() -> None:
    obj = _decoded()
    assert compact(obj) == obj
    assert slim(obj) == {**obj, "metadata": {k: v for k, v in obj["metadata"].items()
                                            if k != "managedFields"}}


def test_two_decoded_objects_share_their_keys_and_short_strings_once_cached() -> None:
    first, second = slim(_decoded()), slim(_decoded())
    one = first["spec"]["template"]["spec"]["containers"][0]
    two = second["spec"]["template"]["spec"]["containers"][0]
    assert one["imagePullPolicy"] is two["imagePullPolicy"]
    assert next(iter(one)) is next(iter(two))  # the key "name"
    assert one["args"][1] == two["args"][1]  # long strings: equal, not interned


def test_the_cache_never_aliases_the_watch_event() -> None:
    event = _decoded()
    cache = ChildCache()
    cache.upsert(event)
    event["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    cached = cache.get("Deployment", "ns", "m")
    assert cached is not None
    assert cached["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == (
        "IfNotPresent")
    assert "managedFields" not in cached["metadata"]
