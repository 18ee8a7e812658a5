"""The activator finds a woken replica by asking the pod itself: a pod that has its IP but
is not Ready yet (the kubelet's next probe tick and the status update still to come) counts
as ready as soon as its own ``/health`` answers 200.

The pod list is what the API server would answer (``KubeDiscovery._request`` is replaced:
no cluster here; tests/integration/test_scale_to_zero*.py use the real API server); the
"pod" is a real HTTP server on loopback whose readiness flips like the serving app's."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from wattserve import contract
from wattserve_activator.discovery import Connection, KubeDiscovery, Target


def pod(ip: str, ready: bool, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"p-{ip}-{ready}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {
        "phase": phase, "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class ListedPods(KubeDiscovery):
    """The real discovery logic over a fixed pod list (the API server's answer)."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        super().__init__(Connection("https://127.0.0.1:1"), probe_timeout_s=0.5)
        self.pods = pods

    async def _request(self, method: str, path: str, json: Any = None) -> Any:
        assert method == "GET" and "/pods?labelSelector=" in path
        return {"items": self.pods}


async def _with_pod(check: Any) -> Any:
    state = {"ready": False, "asked": 0}

    async def health(_: web.Request) -> web.Response:
        state["asked"] += 1
        return web.json_response({"status": "ok" if state["ready"] else "loading"},
                                 status=200 if state["ready"] else 503)

    app = web.Application()
    app.router.add_get(contract.HEALTH_PATH, health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await check(state, port)
    finally:
        await runner.cleanup()


def test_a_not_yet_ready_pod_that_answers_its_health_check_is_used_at_once() -> None:
    async def check(state: dict[str, Any], port: int) -> None:
        target = Target("ns", "svc", "md", (("a", "b"),), port=port)
        disco = ListedPods([pod("127.0.0.1", ready=False)])
        try:
            assert await disco.ready_endpoints(target) == []  # still loading: 503
            state["ready"] = True
            assert await disco.ready_endpoints(target) == [f"http://127.0.0.1:{port}"]
            assert state["asked"] == 2
        finally:
            await disco.close()

    asyncio.run(_with_pod(check))


def test_ready_pods_are_not_probed_and_pending_or_deleting_ones_never_count() -> None:
    async def check(state: dict[str, Any], port: int) -> None:
        state["ready"] = True
        target = Target("ns", "svc", "md", (("a", "b"),), port=port)
        disco = ListedPods([pod("127.0.0.1", ready=False, phase="Pending"),
                            pod("127.0.0.1", ready=False, deleting=True)])
        try:
            assert await disco.ready_endpoints(target) == []
            assert state["asked"] == 0
            disco.pods = [pod("127.0.0.2", ready=True), pod("127.0.0.1", ready=False)]
            # A Ready pod exists: forward there, no probe of the starting one.
            assert await disco.ready_endpoints(target) == [f"http://127.0.0.2:{port}"]
            assert state["asked"] == 0
        finally:
            await disco.close()

    asyncio.run(_with_pod(check))


def test_an_unreachable_starting_pod_is_not_ready_within_the_probe_timeout() -> None:
    async def run() -> None:
        # A port nothing listens on: connection refused, answered "not ready".
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        disco = ListedPods([pod("127.0.0.1", ready=False)])
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert await disco.ready_endpoints(Target("ns", "svc", "md", (), port=port)) == []
            assert loop.time() - t0 < 2.0
        finally:
            await disco.close()

    asyncio.run(run())
