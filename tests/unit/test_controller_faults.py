"""Fault injection: the API answers 500, 429 (Retry-After), 409 on cue (kmock server).

The Reconciler must retry with backoff, honour Retry-After, report the failure (Degraded,
one Warning Event per distinct error) and converge without duplicate children.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import kmock
import kopf
from wattserve.controller.config import OperatorConfig
from wattserve.controller.kubeapi import KubeApi
from wattserve.controller.reconciler import Reconciler

from tests.unit.factories import example_pool_docs
from tests.unit.test_render_support import example_md_doc

DEPLOYMENT_FAULTS = [500, 429, 409]  # then success


class FakeApiServer:
    """Just enough of the API server for the Reconciler's writes (SSA, status, events)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.applied: list[str] = []  # paths of successful applies
        self.faults: list[tuple[float, int]] = []
        self.deployment_patches: list[float] = []
        self.events: list[dict[str, Any]] = []
        self.status: dict[str, Any] = {}
        self._pending = list(DEPLOYMENT_FAULTS)
        self._assigned: dict[int, int | None] = {}  # request id -> injected status (or None)
        self._rv = 0

    def fault_for(self, request: Any) -> int | None:
        """The status injected for this request (decided once per request id)."""
        if request.method != "PATCH" or "/deployments/" not in request.url.path:
            return None
        if request.id not in self._assigned:
            code = self._pending.pop(0) if self._pending else None
            self._assigned[request.id] = code
            self.deployment_patches.append(time.monotonic())
            if code is not None:
                self.faults.append((time.monotonic(), code))
        return self._assigned[request.id]

    def patch(self, request: Any) -> Any:
        path = request.url.path
        body = json.loads(request.body or b"{}")
        if path.endswith("/status"):
            self.status = _merge(self.status, body["status"])
            return {"metadata": {"name": "smollm2-135m", "namespace": "team-a",
                                 "resourceVersion": str(self._next())},
                    **example_md_doc("smollm2-135m.yaml"), "status": self.status}
        obj = dict(body)
        obj["metadata"] = dict(obj["metadata"], resourceVersion=str(self._next()),
                               uid=f"uid-{path}")
        self.objects[path] = obj
        self.applied.append(path)
        return obj

    def post(self, request: Any) -> Any:
        event = json.loads(request.body)
        self.events.append(event)
        return event

    def _next(self) -> int:
        self._rv += 1
        return self._rv


def _merge(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


async def _converge() -> tuple[FakeApiServer, Reconciler]:
    fake = FakeApiServer()
    async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
        for code in DEPLOYMENT_FAULTS:  # statuses injected on cue, before the normal reaction
            headers = {"Retry-After": "1"} if code == 429 else {}
            handler[lambda req, code=code: fake.fault_for(req) == code] << kmock.Response(
                status=code, headers=headers,
                payload={"kind": "Status", "code": code, "message": f"injected {code}"})
        handler["patch"] << fake.patch
        handler["post"] << fake.post
        api = KubeApi(lambda: kopf.ConnectionInfo(server=str(server.url).rstrip("/")))
        rec = Reconciler(api, OperatorConfig(workers=2))
        for doc in example_pool_docs():
            rec.pool_upsert(doc)
        rec.md_upsert(example_md_doc("smollm2-135m.yaml"))
        rec.synced.set()  # caches fed directly: no initial LIST against the fake server
        workers = [asyncio.create_task(rec.worker()) for _ in range(2)]
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                degraded = {c["type"]: c for c in fake.status.get("conditions", [])}.get(
                    "Degraded", {})
                if not fake._pending and rec.queue.idle and degraded.get("status") == "False":
                    break
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await api.close()
    return fake, rec


def test_api_errors_are_retried_and_the_reconcile_converges_without_duplicates() -> None:
    fake, rec = asyncio.run(_converge())
    assert [code for _, code in fake.faults] == DEPLOYMENT_FAULTS
    # every child applied successfully exactly once: no duplicates, no re-apply storm
    assert sorted(p.rsplit("/", 2)[-2] for p in fake.applied) == ["deployments", "services"]
    assert len(set(fake.applied)) == len(fake.applied)
    conditions = {c["type"]: c for c in fake.status["conditions"]}
    assert conditions["Placed"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"
    assert fake.status["replicas"]["desired"] >= 1
    assert rec.queue.idle


def test_retry_after_on_429_is_honoured() -> None:
    fake, _ = asyncio.run(_converge())
    t429 = next(t for t, code in fake.faults if code == 429)
    later = [t for t in fake.deployment_patches if t > t429]
    assert later and later[0] - t429 >= 0.9


def test_each_distinct_failure_is_one_warning_event_and_degraded_is_reported() -> None:
    fake, _ = asyncio.run(_converge())
    warnings = [e for e in fake.events if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["ApplyFailed"] * len(DEPLOYMENT_FAULTS)
    assert len({e["message"] for e in warnings}) == len(DEPLOYMENT_FAULTS)
    placed = [e for e in fake.events if e["reason"] == "Placed"]
    assert len(placed) == 1


class PagedListServer:
    """LISTs in pages of one item; the first continue request answers 410 Gone (expired)."""

    def __init__(self, kinds: dict[str, list[dict[str, Any]]]) -> None:
        self.kinds = kinds
        self.gone_sent = 0
        self.lists = 0

    def expired(self, request: Any) -> bool:
        if request.method == "GET" and request.params.get("continue") and not self.gone_sent:
            self.gone_sent += 1
            return True
        return False

    def list(self, request: Any) -> Any:
        self.lists += 1
        plural = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        items = self.kinds.get(plural, [])
        start = int(request.params.get("continue") or 0)
        page = items[start:start + 1]
        more = start + 1 < len(items)
        return {"items": page, "metadata": {"continue": str(start + 1) if more else ""}}


def _child(kind: str, name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team-a", "resourceVersion": "5",
                         "labels": {"app.kubernetes.io/managed-by": "wattserve"},
                         "ownerReferences": [{"kind": "ModelDeployment", "name": name,
                                              "uid": "uid-1", "controller": True}]}}


def test_initial_list_restarts_after_410_gone_and_loads_every_child() -> None:
    async def scenario() -> tuple[PagedListServer, Reconciler]:
        fake = PagedListServer({
            "servingpools": example_pool_docs(),
            "deployments": [_child("Deployment", f"m{i}") for i in range(3)],
            "services": [_child("Service", f"m{i}") for i in range(3)],
        })
        async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
            handler[fake.expired] << kmock.Response(
                status=410, payload={"kind": "Status", "code": 410, "reason": "Expired",
                                     "message": "continue token expired"})
            handler["get"] << fake.list
            api = KubeApi(lambda: kopf.ConnectionInfo(server=str(server.url).rstrip("/")))
            rec = Reconciler(api, OperatorConfig(namespaces=("team-a",)))
            try:
                await asyncio.wait_for(rec.initial_sync(), timeout=20)
            finally:
                await api.close()
        return fake, rec

    fake, rec = asyncio.run(scenario())
    assert fake.gone_sent == 1
    assert rec.synced.is_set()
    assert sorted(rec.pools) == ["cpu-general", "cpu-local", "gpu-h100", "gpu-l4"]
    assert len(rec.children) == 6  # 3 Deployments + 3 Services, none twice
    assert set(rec.children.of(("team-a", "m1"))) == {("Deployment", "m1"), ("Service", "m1")}
