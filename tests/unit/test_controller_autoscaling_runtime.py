"""The autoscaler loop against a stub API server and a fake Prometheus (no network).

The autoscaler writes nothing itself: it hands each decision to the reconciler, which writes
it in its one status patch (:func:`drain` runs the reconciles it queued)."""

from __future__ import annotations

import asyncio
import copy
import json
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
            self.last_error = QueryError(promql, "unreachable: connection refused",
                                         unreachable=True)
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


async def drain(rec: Reconciler) -> int:
    """Run the reconciles queued now (what the workers would do); how many ran."""
    ran = 0
    while len(rec.queue):
        key = await rec.queue.get()
        await rec.reconcile(key)
        rec.queue.done(key)
        ran += 1
    await asyncio.sleep(0)  # let the background Event posts run
    return ran


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
            await drain(rec)
        assert deployments(api) == [2]  # nothing scaled
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
        await drain(rec)
        writes = len(api.status_patches)
        await scaler.tick_all()
        await drain(rec)
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


def test_the_autoscaler_writes_nothing_itself_and_never_plans() -> None:
    async def scenario() -> tuple[Any, int, int, list[int]]:
        rec, api = await placed()
        writes, requests = len(api.status_patches), api.requests
        prom = FakePrometheus(BUSY)
        scaler = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                            client_factory=lambda: prom, clock=lambda: 1000.0)
        plan = rec.plans[KEY]
        await scaler.tick_all()
        assert len(api.status_patches) == writes and api.requests == requests
        assert api.patches == [] and len(rec.queue) == 1 and KEY in rec.scaling
        assert rec.plans[KEY] is plan  # the reconciler's plan, used as it is
        ran = await drain(rec)
        first = deployments(api)
        await scaler.tick_all()  # the next tick starts from the count the reconcile rendered
        await drain(rec)
        return api, ran, len(api.status_patches) - writes, first

    api, ran, written, first = asyncio.run(scenario())
    assert ran == 1 and written >= 1
    # the policy's memory is stored on purpose (an annotation), the status only reports it
    (stored, *_) = api.patches
    saved = stored["metadata"]["annotations"]["wattserve.dev/scaler-state"]
    assert json.loads(saved)["replicas"] == first[-1]
    assert api.md["status"]["scaler"]["replicas"] == first[-1]


def test_a_restarted_autoscaler_reads_the_stored_state_not_the_status() -> None:
    async def scenario() -> tuple[Any, Any]:
        rec, api = await placed()
        prom = FakePrometheus(BUSY)
        first = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                           client_factory=lambda: prom, clock=lambda: 1000.0)
        await first.tick_all()
        await drain(rec)
        state = first.states[KEY]
        api.md["status"]["scaler"] = {"replicas": 99}  # a user-facing report: never read
        rec.md_upsert(copy.deepcopy(api.md))
        await drain(rec)
        restarted = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                               client_factory=lambda: prom, clock=lambda: 1001.0)
        await restarted.tick_all()
        return state, restarted.states[KEY]

    before, after = asyncio.run(scenario())
    assert after.replicas == before.replicas != 99
    assert after.recommendations[: len(before.recommendations)] == before.recommendations
