"""The autoscaler loop against a stub API server and a fake Prometheus (no network)."""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

from wattserve import contract
from wattserve.autoscale.prometheus import QueryError
from wattserve.controller.autoscaler import Autoscaler, FailFast
from wattserve.controller.autoscaling import AutoscaleSettings
from wattserve.controller.config import OperatorConfig
from wattserve.controller.kubeapi import ApiError
from wattserve.controller.reconciler import Reconciler

from tests.unit.factories import example_pool_docs
from tests.unit.test_controller_scaling import StubApi
from tests.unit.test_render_support import example_md_doc

KEY = ("team-a", "smollm2-135m")
URL = "http://prometheus.invalid:9090"


class EventApi(StubApi):
    """+ Events, and resourceVersion preconditions (``conflicts``: 409s to answer)."""

    def __init__(self, md: dict[str, Any]) -> None:
        super().__init__(md)
        self.events: list[dict[str, Any]] = []
        self.conflicts = 0
        self.guarded: list[str | None] = []

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any],
                           resource_version: str | None = None) -> Any:
        self.guarded.append(resource_version)
        if resource_version is not None and self.conflicts:
            self.conflicts -= 1
            raise ApiError(409, "the object has been modified")
        return await super().patch_status(namespace, name, patch)

    async def create(self, api_version: str, kind: str, namespace: str,
                     body: dict[str, Any]) -> Any:
        self.events.append(copy.deepcopy(body))
        return body


class FakePrometheus:
    """Answers by metric name; ``down`` = connection refused for every query."""

    def __init__(self, values: dict[str, float], down: bool = False) -> None:
        self.values = values
        self.down = down
        self.queries: list[str] = []
        self.last_error: QueryError | None = None

    def query_value(self, promql: str) -> float | None:
        self.queries.append(promql)
        self.last_error = None
        if self.down:
            self.last_error = QueryError(promql, "unreachable: connection refused")
            return None
        # The query's first selector names the metric it is about (the energy queries also
        # name the serving pods' in-flight gauge, inside their join).
        leading = re.search(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\{)", promql)
        for metric, value in self.values.items():
            if leading is not None and leading.group(0).startswith(metric):
                return value
        self.last_error = QueryError(promql, "empty vector")
        return None


BUSY = {contract.REQUESTS_TOTAL: 6.0, contract.REQUEST_LATENCY_SECONDS: 5.0,
        contract.TIME_TO_FIRST_TOKEN_SECONDS: 0.4, contract.PROMPT_TOKENS_TOTAL: 300.0,
        contract.GENERATION_TOKENS_TOTAL: 300.0, contract.REQUESTS_IN_FLIGHT: 2.0,
        contract.REQUESTS_QUEUED: 6.0, contract.ENERGY_JOULES_TOTAL: 150.0}


async def placed(api_cls: type[StubApi] = EventApi) -> tuple[Reconciler, Any]:
    md = example_md_doc("smollm2-135m.yaml")
    md["metadata"]["resourceVersion"] = "1"
    md["metadata"]["generation"] = 1
    api = api_cls(md)
    rec = Reconciler(api, OperatorConfig())  # type: ignore[arg-type]
    for doc in example_pool_docs():
        rec.pool_upsert(doc)
    rec.md_upsert(copy.deepcopy(md))
    await rec.reconcile(await rec.queue.get())
    rec.queue.done(KEY)
    rec.synced.set()
    return rec, api


def deployments(api: StubApi) -> list[int]:
    return [o["spec"]["replicas"] for o in api.applied if o["kind"] == "Deployment"]


def test_a_tick_under_load_scales_the_deployment_through_the_seam() -> None:
    async def scenario() -> tuple[Reconciler, Any, Autoscaler]:
        rec, api = await placed()
        prom = FakePrometheus(BUSY)
        scaler = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                            client_factory=lambda: prom, clock=lambda: 1000.0)
        await scaler.tick_all()
        await asyncio.sleep(0)  # let the background Event posts run
        assert len(rec.queue) == 1
        await rec.reconcile(await rec.queue.get())
        return rec, api, scaler

    rec, api, scaler = asyncio.run(scenario())
    status = api.md["status"]
    desired = status["replicas"]["desired"]
    assert desired > 2 and deployments(api) == [2, desired]
    assert status["lastScale"]["from"] == 2 and status["lastScale"]["to"] == desired
    assert status["observed"]["joulesPerToken"] == 0.5  # 150 W / 300 tokens/s
    assert status["observed"]["energySource"] == "wattserve"  # Kepler, DCGM: no data
    assert status["current"]["source"] == "observed"
    assert status["scaler"]["replicas"] == desired and KEY in scaler.states
    scaled = next(c for c in status["conditions"] if c["type"] == "Scaled")
    assert scaled["status"] == "True"
    assert [(e["type"], e["reason"]) for e in api.events
            if e["reason"] == "Scaled"] == [("Normal", "Scaled")]
    assert rec.mds[KEY]["status"]["scaler"]["replicas"] == desired


def test_prometheus_down_fails_fast_holds_and_warns_once() -> None:
    async def scenario() -> tuple[Any, FakePrometheus]:
        rec, api = await placed()
        prom = FakePrometheus({}, down=True)
        scaler = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                            client_factory=lambda: prom, clock=lambda: 1000.0)
        for _ in range(3):
            await scaler.tick_all()
            await asyncio.sleep(0)
        assert not rec.queue  # nothing to scale
        return api, prom

    api, prom = asyncio.run(scenario())
    assert len(prom.queries) == 3  # one query per tick, then fail-fast
    status = api.md["status"]
    scaled = next(c for c in status["conditions"] if c["type"] == "Scaled")
    assert (scaled["status"], scaled["reason"]) == ("Unknown", "MetricsUnavailable")
    assert "connection refused" in scaled["message"]
    assert status["replicas"]["desired"] == 2
    warnings = [e for e in api.events if e["reason"] == "MetricsUnavailable"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"


def test_without_a_prometheus_url_the_scaled_condition_says_disabled_once() -> None:
    async def scenario() -> tuple[Any, int]:
        rec, api = await placed()
        scaler = Autoscaler(rec, AutoscaleSettings())
        await scaler.tick_all()
        writes = len(api.status_patches)
        await scaler.tick_all()
        return api, len(api.status_patches) - writes

    api, second = asyncio.run(scenario())
    scaled = next(c for c in api.md["status"]["conditions"] if c["type"] == "Scaled")
    assert (scaled["status"], scaled["reason"]) == ("False", "AutoscalerDisabled")
    assert second == 0
    assert "scaler" not in api.md["status"]


def test_fail_fast_keeps_the_first_error() -> None:
    prom = FakePrometheus({}, down=True)
    client = FailFast(prom)  # type: ignore[arg-type]
    assert client.query_value("a") is None and client.query_value("b") is None
    assert prom.queries == ["a"] and client.error.startswith("unreachable")


def test_a_conflicting_write_defers_the_condition_but_keeps_the_scaler_state() -> None:
    async def scenario() -> tuple[Any, dict[str, Any]]:
        rec, api = await placed()
        before = copy.deepcopy(api.md["status"]["conditions"])
        api.conflicts = 1  # the reconcile wrote the status meanwhile
        api.guarded.clear()
        prom = FakePrometheus(BUSY)
        scaler = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                            client_factory=lambda: prom, clock=lambda: 1000.0)
        await scaler.tick_all()
        assert api.md["status"]["conditions"] == before  # not overwritten from a stale copy
        assert api.md["status"]["current"]["source"] == "predicted"  # deferred too
        return api, api.md["status"]

    api, status = asyncio.run(scenario())
    # guarded write (409), the autoscaler's own fields alone, then the seam's write
    assert api.guarded[0] == "2" and api.guarded[1:] == [None, None]
    assert status["scaler"]["replicas"] > 2  # the autoscaler's own fields were written
    assert status["observed"]["requestRate"] == 6
    assert status["replicas"]["desired"] > 2  # and the scale went through the seam
