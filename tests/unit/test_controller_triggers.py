"""Each reconcile is counted by what queued it; an echo of our own write queues none and is
counted apart (wattserve_operator_reconcile_triggers_total / _own_echoes_total)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from prometheus_client import REGISTRY
from wattserve.controller.config import OperatorConfig
from wattserve.controller.reconciler import Reconciler
from wattserve.controller.triggers import Trigger

from tests.unit.factories import example_pool_docs
from tests.unit.test_controller_autoscaling_runtime import KEY, EventApi, placed
from tests.unit.test_controller_own_writes import _bumped
from tests.unit.test_render_support import example_md_doc


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _triggers(trigger: Trigger) -> float:
    return _count("wattserve_operator_reconcile_triggers_total", trigger=trigger.value)


def test_a_create_is_one_reconcile_counted_as_created_and_its_echo_as_ours() -> None:
    async def scenario() -> tuple[float, float, float]:
        md = example_md_doc("smollm2-135m.yaml")
        md["metadata"] |= {"resourceVersion": "1", "generation": 1}
        api = EventApi(md)
        rec = Reconciler(api, OperatorConfig())  # type: ignore[arg-type]
        for doc in example_pool_docs():
            rec.pool_upsert(doc)
        created, echoes = _triggers(Trigger.CREATED), _count(
            "wattserve_operator_own_echoes_total", kind="ModelDeployment")
        rec.synced.set()
        worker = asyncio.create_task(rec.worker())
        rec.md_upsert(copy.deepcopy(md))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if rec.reconciles and rec.queue.idle:
                break
        # the watch event of our status patch, after its answer
        rec.md_upsert(_bumped(rec.mds[KEY]) | {"status": rec.mds[KEY]["status"]})
        await asyncio.sleep(0.05)
        worker.cancel()
        return (_triggers(Trigger.CREATED) - created, float(rec.reconciles),
                _count("wattserve_operator_own_echoes_total", kind="ModelDeployment") - echoes)

    created, reconciles, echoes = asyncio.run(scenario())
    assert (created, reconciles, echoes) == (1.0, 1.0, 1.0)


def _queued_by(change: Any) -> Trigger | None:
    rec, api = asyncio.run(placed())
    rec.trigger_of(KEY)  # placed() ran its reconcile without a worker: what queued it
    change(rec, api)
    return rec.triggers.get(KEY) if len(rec.queue) else None


def test_what_queues_a_reconcile_is_named() -> None:
    def status_by_others(rec: Reconciler, _: Any) -> None:
        rec.md_upsert(_bumped(rec.mds[KEY], replicas={"desired": 3}))

    def spec_change(rec: Reconciler, _: Any) -> None:
        new = _bumped(rec.mds[KEY])
        new["metadata"]["generation"] = 2
        new["spec"]["expectedLoad"]["requestsPerSecond"] = "5"
        rec.md_upsert(new)

    def child_gone(rec: Reconciler, api: Any) -> None:
        dep = next(o for o in api.applied if o["kind"] == "Deployment")
        rec.child_deleted(copy.deepcopy(dep))

    def pod_seen(rec: Reconciler, api: Any) -> None:
        dep = next(o for o in api.applied if o["kind"] == "Deployment")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        rec.pod_upsert({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "p-1", "namespace": KEY[0], "labels": labels,
                                     "resourceVersion": "3"},
                        "status": {"phase": "Pending"}})

    def our_echo(rec: Reconciler, _: Any) -> None:
        rec.md_upsert(_bumped(rec.mds[KEY]))  # only the resourceVersion: nothing to do

    assert _queued_by(status_by_others) is Trigger.STATUS_BY_OTHERS
    assert _queued_by(spec_change) is Trigger.CHANGED
    assert _queued_by(child_gone) is Trigger.CHILD
    assert _queued_by(pod_seen) is Trigger.POD
    assert _queued_by(our_echo) is None


def test_the_first_trigger_is_kept_until_the_reconcile_starts() -> None:
    rec, _ = asyncio.run(placed())
    rec.trigger_of(KEY)
    rec.enqueue(KEY, Trigger.POD)
    rec.enqueue(KEY, Trigger.CHILD)
    assert rec.trigger_of(KEY) is Trigger.POD
    assert rec.trigger_of(KEY) is Trigger.TIMER  # nothing queued it since: a timer did
