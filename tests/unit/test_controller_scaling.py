"""The autoscaler seam: it hands a count to the reconciler, which renders it and writes
status.replicas.desired (the one writer of status)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from wattserve.controller.config import OperatorConfig
from wattserve.controller.reconciler import Reconciler
from wattserve.controller.scaling import set_desired_replicas

from tests.unit.factories import example_pool_docs
from tests.unit.test_render_support import example_md_doc


class StubApi:
    """Records writes; returns what a server would (the object after the write)."""

    def __init__(self, md: dict[str, Any]) -> None:
        self.md = md
        self.status_patches: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []
        self.patches: list[dict[str, Any]] = []  # merge patches of the object (annotations)
        self.requests = 0

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        self.status_patches.append(copy.deepcopy(patch))
        status = self.md.setdefault("status", {})
        for key, value in patch.items():
            if isinstance(value, dict) and isinstance(status.get(key), dict):
                status[key] = {**status[key], **value}
            else:
                status[key] = value
        rv = int(self.md["metadata"].get("resourceVersion", "0")) + 1
        self.md["metadata"]["resourceVersion"] = str(rv)
        return copy.deepcopy(self.md)

    async def patch(self, api_version: str, kind: str, namespace: str, name: str,
                    patch: dict[str, Any]) -> Any:
        self.patches.append(copy.deepcopy(patch))
        meta = self.md["metadata"]
        meta["annotations"] = {**(meta.get("annotations") or {}),
                               **patch["metadata"]["annotations"]}
        meta["resourceVersion"] = str(int(meta.get("resourceVersion", "0")) + 1)
        return copy.deepcopy(self.md)

    async def apply(self, obj: dict[str, Any], force: bool = True) -> Any:
        self.applied.append(copy.deepcopy(obj))
        return copy.deepcopy(obj)

    async def create(self, *args: Any) -> Any:
        return {}


def test_set_desired_replicas_is_written_and_rendered_by_the_reconcile() -> None:
    async def scenario() -> tuple[StubApi, list[int]]:
        md = example_md_doc("smollm2-135m.yaml")
        md["metadata"]["resourceVersion"] = "1"
        api = StubApi(md)
        rec = Reconciler(api, OperatorConfig())  # type: ignore[arg-type]
        for doc in example_pool_docs():
            rec.pool_upsert(doc)
        rec.md_upsert(copy.deepcopy(md))
        key = ("team-a", "smollm2-135m")
        await rec.reconcile(await rec.queue.get())
        rec.queue.done(key)
        first = [o["spec"]["replicas"] for o in api.applied if o["kind"] == "Deployment"]
        await set_desired_replicas(rec, "team-a", "smollm2-135m", 5,
                                   last_scale={"reason": "test"})
        await rec.reconcile(await rec.queue.get())
        scaled = [o["spec"]["replicas"] for o in api.applied if o["kind"] == "Deployment"]
        return api, first + scaled[len(first):]

    api, replicas = asyncio.run(scenario())
    assert replicas == [2, 5]  # the plan's 2, then the autoscaler's 5
    assert any(p.get("replicas", {}).get("desired") == 5 and p.get("lastScale") == {
        "reason": "test"} for p in api.status_patches)  # in the reconcile's one patch
    assert api.md["status"]["replicas"]["desired"] == 5
