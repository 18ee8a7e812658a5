"""Scale to zero's memory is stored on purpose (the ``wattserve.dev/idle-state`` annotation),
not read back from ``status.idle``: an old object without the annotation still works (its
status seeds the memory once), a hand edit of ``status.idle`` changes no decision, and an idle
model costs no extra write per tick."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from typing import Any

from wattserve import contract
from wattserve.controller.autoscaler import Autoscaler
from wattserve.controller.autoscaling import AutoscaleSettings
from wattserve.controller.config import OperatorConfig
from wattserve.controller.kubeapi import ApiError
from wattserve.controller.reconciler import Reconciler
from wattserve.reconcile.idlestate import (
    ANNOTATION_IDLE_STATE,
    memory_annotation,
    remember,
    with_memory,
)
from wattserve.reconcile.zero import iso

from tests.unit.factories import example_pool_docs
from tests.unit.test_controller_autoscaling import NOW, idle, placed_body, run_tick
from tests.unit.test_controller_autoscaling_runtime import (
    KEY,
    URL,
    EventApi,
    FakePrometheus,
    drain,
)
from tests.unit.test_controller_decide import merge, run
from tests.unit.test_idle_scale_to_zero import ACTIVATOR, zero_body
from tests.unit.test_render_support import example_md_doc

ZEROED = "2026-01-01T00:00:00Z"  # zero_body's status.idle.scaledToZeroAt
EARLIER = {contract.ANNOTATION_ACTIVATION: "2025-12-31T23:59:00Z"}  # before the scale to zero
LATER = {contract.ANNOTATION_ACTIVATION: "2026-01-01T00:00:05Z"}  # after it


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` once the reconcile stored the memory it holds (the migration's write)."""
    out = run(body, activator=ACTIVATOR)
    assert ANNOTATION_IDLE_STATE in out.annotations
    return merge(body, {"metadata": {"annotations": dict(out.annotations)}})


def replicas(out: Any) -> int:
    return int(next(o for o in out.apply if o["kind"] == "Deployment")["spec"]["replicas"])


# ---- (1) migration: an object from an older operator, status.idle and no annotation ------

def test_without_the_annotation_status_idle_seeds_the_memory_once_and_is_stored() -> None:
    old = zero_body(**EARLIER)  # status.idle.scaledToZeroAt only, no idle-state annotation
    assert ANNOTATION_IDLE_STATE not in old["metadata"]["annotations"]
    out = run(old, activator=ACTIVATOR)
    assert replicas(out) == 0 and not out.events  # the older activation is still ignored
    assert json.loads(out.annotations[ANNOTATION_IDLE_STATE]) == {"scaledToZeroAt": ZEROED}
    woken = run(zero_body(**LATER), activator=ACTIVATOR, now="2026-01-01T00:00:06Z")
    assert replicas(woken) == 1  # and a newer one wakes it, as before
    # Once stored, status.idle is no longer read: clearing it changes nothing.
    migrated = stored(old)
    cleared = merge(migrated, {"status": {"idle": None}})
    again = run(cleared, activator=ACTIVATOR)
    assert replicas(again) == 0 and not again.events and again.annotations == {}


def test_an_old_status_idle_feeds_the_first_tick_too() -> None:
    body = placed_body(desired=1, minReplicas=0)
    body["status"]["idle"] = {"since": iso(NOW - 3000)}  # written by an older operator
    assert run_tick(body, idle()).desired_replicas == 0  # idle for 3000 s: past the timeout


# ---- (2) a hand edit of status.idle changes no decision ---------------------------------

def test_editing_or_clearing_status_idle_by_hand_changes_no_wake_decision() -> None:
    for activation, want in ((EARLIER, 0), (LATER, 1)):
        body = stored(zero_body(**activation))
        edits = ({"idle": None}, {"idle": {"scaledToZeroAt": "2030-01-01T00:00:00Z"}},
                 {"idle": {"scaledToZeroAt": "2000-01-01T00:00:00Z", "wakeRequestedAt": None}})
        for edit in edits:
            out = run(merge(body, {"status": edit}), activator=ACTIVATOR,
                      now="2026-01-01T00:00:06Z")
            assert replicas(out) == want, (activation, edit)
            assert [e.reason for e in out.events] == (["Activated"] if want else [])


def test_a_cleared_status_idle_is_written_again_from_the_memory() -> None:
    body = stored(zero_body())
    out = run(merge(body, {"status": {"idle": None}}), activator=ACTIVATOR)
    assert out.status_patch is not None
    assert out.status_patch["idle"]["scaledToZeroAt"] == ZEROED
    assert out.annotations == {}  # the memory itself did not change


def test_editing_status_idle_by_hand_changes_no_tick() -> None:
    body = placed_body(desired=1, minReplicas=0)
    memory = {"since": iso(NOW - 30), "coldStartSeconds": 5.0, "coldStartLearned": True}
    body = with_memory(body, memory)
    want = run_tick(body, idle())
    for edit in ({"since": iso(NOW - 86400)}, {"coldStartSeconds": 900.0}, {}):
        body["status"]["idle"] = dict(edit)
        got = run_tick(body, idle())
        assert got.desired_replicas == want.desired_replicas
        assert got.status_patch["idle"] == want.status_patch["idle"]
    assert want.desired_replicas is None  # idle for 30 s only: stays up


def test_active_rate_is_stored_only_when_it_moves_by_a_meaningful_share() -> None:
    body = with_memory(placed_body(), {"activeRate": 2.0})
    assert memory_annotation(body, remember({"activeRate": 2.0}, {"activeRate": 2.02})) == {}
    assert memory_annotation(body, {"activeRate": 2.5})
    assert memory_annotation(body, {"activeRate": 2.0, "since": iso(NOW)})
    assert memory_annotation(placed_body(), {}) == {}  # nothing to remember, nothing stored


def test_a_steady_rate_is_stored_to_within_5_percent_and_then_costs_no_write() -> None:
    """The ticks' average of the rate (stored only past the share) follows a steady rate to
    within 5 % of it, and then stops writing: no drift far from the rate, no write per tick."""
    from tests.unit.test_controller_autoscaling import busy

    body = with_memory(placed_body(desired=1, minReplicas=0), {"activeRate": 1.0})
    writes = []
    for tick in range(40):
        out = run_tick(body, busy(rate=2.0, p95=0.5), now=NOW + 15 * tick)
        memory = remember(json.loads(body["metadata"]["annotations"][ANNOTATION_IDLE_STATE]),
                          out.status_patch.get("idle"))
        annotation = memory_annotation(body, memory)
        writes.append(bool(annotation))
        if annotation:
            body = with_memory(body, memory)
    rate = json.loads(body["metadata"]["annotations"][ANNOTATION_IDLE_STATE])["activeRate"]
    assert abs(rate - 2.0) <= 0.05 * 2.0, rate
    assert not any(writes[-20:]), writes  # settled: no write per tick
    assert sum(writes) >= 3  # it did follow the rate up from 1.0


# ---- (3) the runtime: one patch when the memory changes, none per idle tick -------------

async def idle_model(timeout_s: int, api_type: type[EventApi] = EventApi
                     ) -> tuple[Reconciler, EventApi]:
    md = example_md_doc("smollm2-135m.yaml")
    md["metadata"].update(resourceVersion="1", generation=1)
    md["spec"]["scaling"].update(minReplicas=0, idleTimeoutSeconds=timeout_s)
    api = api_type(md)
    rec = Reconciler(api, OperatorConfig())  # type: ignore[arg-type]
    for doc in example_pool_docs():
        rec.pool_upsert(doc)
    rec.md_upsert(copy.deepcopy(md))
    await drain(rec)
    rec.synced.set()
    return rec, api


IDLE = {contract.REQUESTS_TOTAL: 0.0, contract.REQUESTS_IN_FLIGHT: 0.0,
        contract.REQUESTS_QUEUED: 0.0}


def ticks(timeout_s: int, n: int) -> tuple[EventApi, list[int], list[int]]:
    """``n`` autoscaler ticks 5 s apart on an idle model; object patches and status patches
    counted after each tick."""
    async def scenario() -> tuple[EventApi, list[int], list[int]]:
        rec, api = await idle_model(timeout_s)
        clock = [1000.0]
        scaler = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                            client_factory=lambda: FakePrometheus(IDLE), clock=lambda: clock[0])
        patches, statuses = [], []
        for _ in range(n):
            await scaler.tick_all()
            await drain(rec)
            patches.append(len(api.patches))
            statuses.append(len(api.status_patches))
            clock[0] += 5.0
        return api, patches, statuses
    return asyncio.run(scenario())


def test_an_idle_model_costs_no_extra_write_per_tick() -> None:
    api, patches, statuses = ticks(timeout_s=3600, n=8)  # idle, under the timeout: stays up
    assert patches == [1] * 8  # the first tick stores both memories, in one patch
    (first,) = api.patches
    annotations = first["metadata"]["annotations"]
    assert set(annotations) == {"wattserve.dev/scaler-state", ANNOTATION_IDLE_STATE}
    assert "since" in json.loads(annotations[ANNOTATION_IDLE_STATE])
    assert all(b - a <= 1 for a, b in itertools.pairwise(statuses))
    assert api.md["status"]["replicas"]["desired"] == 1


def test_a_model_at_zero_costs_no_memory_write_per_tick() -> None:
    api, patches, _ = ticks(timeout_s=30, n=8)  # idle for the window >= 30 s: goes to zero
    assert api.md["status"]["replicas"]["desired"] == 0
    assert patches[-1] == patches[0] == 1  # scaled to zero at the first tick, then no write
    memory = json.loads(api.md["metadata"]["annotations"][ANNOTATION_IDLE_STATE])
    assert memory["scaledToZeroAt"] == api.md["status"]["idle"]["scaledToZeroAt"]


class FailingOnceApi(EventApi):
    """The first object patch (the memory annotations) answers 500."""

    failed = False

    async def patch(self, api_version: str, kind: str, namespace: str, name: str,
                    patch: dict[str, Any]) -> Any:
        if not self.failed:
            self.failed = True
            raise ApiError(500, "etcd timeout")
        return await super().patch(api_version, kind, namespace, name, patch)


def test_a_failed_memory_write_is_tried_again() -> None:
    async def scenario() -> tuple[FailingOnceApi, Reconciler]:
        rec, api = await idle_model(30, FailingOnceApi)
        assert isinstance(api, FailingOnceApi)
        scaler = Autoscaler(rec, AutoscaleSettings(prometheus_url=URL),
                            client_factory=lambda: FakePrometheus(IDLE), clock=lambda: 1000.0)
        await scaler.tick_all()
        await drain(rec)  # scales to zero; storing its memory fails
        assert api.failed and api.patches == [] and KEY in rec.state_to_store
        rec.queue.forget(KEY)  # run the retry now instead of in STORE_RETRY_S
        rec.queue.add(KEY)
        await drain(rec)
        return api, rec

    api, rec = asyncio.run(scenario())
    (written,) = api.patches
    memory = json.loads(written["metadata"]["annotations"][ANNOTATION_IDLE_STATE])
    assert memory["scaledToZeroAt"] == api.md["status"]["idle"]["scaledToZeroAt"]
    assert KEY not in rec.state_to_store
