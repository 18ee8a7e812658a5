"""The operator's memory: the caches keep compacted copies (equal to what the watch delivered
minus managedFields, sharing keys and short strings, never aliasing the event), and the
operator's process loads no client library it does not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_the_operator_process_loads_no_unused_kubernetes_client_library() -> None:
    code = ("import sys\n"
            "from wattserve.controller.cli import _without_unused_clients\n"
            "_without_unused_clients()\n"
            "import kopf, wattserve.controller.app\n"
            "assert kopf.login_with_kubeconfig\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('kubernetes', 'kubernetes_asyncio', 'pykube') and sys.modules[m] is not None))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), check=True, timeout=120)
    assert out.stdout.strip() == "[]"
