"""A 422 or 400 from the API server cannot succeed on retry: the worker reports it and does
not retry; a 500 keeps being retried (kmock server, the Reconciler's real HTTP client)."""

from __future__ import annotations

import asyncio
import time

import kmock
import kopf
import pytest
from wattserve.controller.config import OperatorConfig
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.controller.reconciler import Reconciler

from tests.unit.factories import example_pool_docs
from tests.unit.test_controller_faults import FakeApiServer
from tests.unit.test_render_support import example_md_doc


async def _run_with_deployment_failing(code: int, seconds: float) -> FakeApiServer:
    fake = FakeApiServer()
    fake._pending = [code] * 1000  # every Deployment apply fails with ``code``
    async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
        handler[lambda req: fake.fault_for(req) == code] << kmock.Response(
            status=code, payload={"kind": "Status", "code": code, "message": f"injected {code}"})
        handler["patch"] << fake.patch
        handler["post"] << fake.post
        api = KubeApi(lambda: kopf.ConnectionInfo(server=str(server.url).rstrip("/")))
        rec = Reconciler(api, OperatorConfig(workers=1))
        for doc in example_pool_docs():
            rec.pool_upsert(doc)
        rec.md_upsert(example_md_doc("smollm2-135m.yaml"))
        rec.synced.set()
        worker = asyncio.create_task(rec.worker())
        try:
            await asyncio.sleep(seconds)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await api.close()
    return fake


@pytest.mark.parametrize("code", [422, 400])
def test_an_invalid_request_is_reported_once_and_not_retried(code: int) -> None:
    fake = asyncio.run(_run_with_deployment_failing(code, 2.5))
    assert [c for _, c in fake.faults] == [code]  # one attempt
    degraded = {c["type"]: c for c in fake.status["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ApplyFailed")
    assert [e["reason"] for e in fake.events if e["type"] == "Warning"] == ["ApplyFailed"]


def test_a_server_error_is_still_retried() -> None:
    started = time.monotonic()
    fake = asyncio.run(_run_with_deployment_failing(500, 2.5))
    assert len(fake.faults) >= 2
    assert time.monotonic() - started < 30


def test_only_400_and_422_are_permanent() -> None:
    assert [s for s in (400, 404, 409, 422, 429, 500) if ApiError(s, "x").permanent] == [400, 422]
