"""Scale to zero on the dev cluster: the real operator, a real Prometheus, the real activator.

* a real control plane (``kube_cluster``; kwok node pools: pods are scheduled by the real
  scheduler and marked Ready by kwok, but run nothing);
* the real serving app serving SmolLM2 as a local process labelled as the ModelDeployment
  (it stands in for the replicas, as in test_autoscale_live.py), scraped by a real Prometheus;
* the operator subprocess with ``--prometheus-url``, ``--autoscale-interval 2``,
  ``--promql-window 10s`` and ``WATTSERVE_ACTIVATOR_SERVICE`` naming a Service whose
  EndpointSlice carries the activator's (nominal) pod address;
* the real activator (``wattserve_activator``) in this process, talking to the real API
  server with the cluster's kubeconfig. Only the last hop is a stand-in: kwok pods have no
  network, so a Ready pod's ``podIP:8000`` is mapped to the local serving process.

minReplicas 0 with ``idleTimeoutSeconds: 30``: no requests -> the Deployment goes to 0,
``Scaled=True/ScaledToZero``, ``Ready=True/ScaledToZero``, the model's Service gains the
activator EndpointSlice. Then concurrent requests to the activator -> exactly one wake-up
(one annotation, one ``Activated`` event, Deployment 0 -> 1), every request answered by
the real model, and the slice is deleted once the replica is Ready.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubeutil import Cluster, wait_for
from test_autoscale_live import (  # noqa: F401  (fixtures are used by name)
    MODEL,
    NAME,
    prometheus_fixture,
    serving_fixture,
)
from test_operator_support import (  # noqa: F401  (fixtures are used by name)
    Operator,
    condition,
    events_for,
    get_md,
    md_manifest,
    wait_condition,
    wattserve_api_fixture,
)

REPO = Path(__file__).resolve().parents[2]
for sub in ("serving", "operator"):
    if str(REPO / sub) not in sys.path:
        sys.path.insert(0, str(REPO / sub))

from wattserve import contract  # noqa: E402
from wattserve_activator.discovery import (  # noqa: E402
    KubeDiscovery,
    Target,
    connection_from_kubeconfig,
)

pytestmark = pytest.mark.integration
ACTIVATOR_SVC = "ws-activator"
ACTIVATOR_IP = "10.244.7.7"
HELD = 4


class PodNetworkStandIn(KubeDiscovery):
    """The real discovery (API server: Service, pods, the annotation patch); only a Ready
    kwok pod's address is mapped to the local serving process (kwok pods run nothing)."""

    def __init__(self, cluster: Cluster, serving_url: str) -> None:
        super().__init__(connection_from_kubeconfig(str(cluster.kubeconfig)))
        self.serving_url = serving_url
        self.seen_pods: list[str] = []
        self.activations = 0

    async def ready_endpoints(self, target: Target) -> list[str]:
        real = await super().ready_endpoints(target)
        self.seen_pods = real
        return [self.serving_url for _ in real]

    async def activate(self, target: Target) -> None:
        self.activations += 1
        await super().activate(target)


def _replicas(cluster: Cluster, ns: str) -> int:
    return int(cluster.get_json("deployment", NAME, "-n", ns)["spec"]["replicas"])


def _activator_slice(cluster: Cluster, ns: str) -> dict[str, Any] | None:
    items = cluster.get_json("endpointslices", "-n", ns, "-l",
                             f"kubernetes.io/service-name={NAME},"
                             "endpointslice.kubernetes.io/managed-by=operator.wattserve.dev")
    return items["items"][0] if items["items"] else None


@pytest.fixture(name="activator_service")
def activator_service_fixture(wattserve_api: Cluster, namespace: str,
                              monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Service + EndpointSlice where the chart's activator would be."""
    cluster = wattserve_api
    cluster.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": ACTIVATOR_SVC, "namespace": namespace},
                   "spec": {"ports": [{"name": "http", "port": 8012}]}})
    cluster.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": f"{ACTIVATOR_SVC}-1", "namespace": namespace,
                                "labels": {"kubernetes.io/service-name": ACTIVATOR_SVC}},
                   "addressType": "IPv4",
                   "endpoints": [{"addresses": [ACTIVATOR_IP], "conditions": {"ready": True}}],
                   "ports": [{"name": "http", "port": 8012, "protocol": "TCP"}]})
    monkeypatch.setenv("WATTSERVE_ACTIVATOR_SERVICE", f"{namespace}/{ACTIVATOR_SVC}")
    yield ACTIVATOR_SVC


def _run_activator(discovery: PodNetworkStandIn, namespace: str, n: int,
                   out: list[dict[str, Any]]) -> None:
    from aiohttp import web
    from wattserve_activator.holding import Settings
    from wattserve_activator.server import Activator, make_runner

    async def main() -> None:
        activator = Activator(discovery, Settings(deadline_s=120.0, poll_s=0.2))
        runner = make_runner(activator.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        headers = {"Host": f"{NAME}.{namespace}.svc.cluster.local:8000"}
        body = {"model": MODEL, "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": "Say hello."}]}
        async with httpx.AsyncClient(timeout=150) as client:
            async def one(i: int) -> None:
                t0 = time.monotonic()
                r = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                      json=body | {"stream": i % 2 == 0}, headers=headers)
                out.append({"status": r.status_code, "s": time.monotonic() - t0,
                            "held": r.headers.get(contract.HEADER_ACTIVATED),
                            "body": r.text[:300]})
            await asyncio.gather(*(one(i) for i in range(n)))
        out.append({"metrics": activator.registry.get_sample_value(
            "wattserve_activator_cold_starts_total", {"namespace": namespace,
                                                      "service": NAME})})
        await runner.cleanup()

    asyncio.run(main())


def test_idle_model_goes_to_zero_and_one_wake_up_answers_every_held_request(
        wattserve_api: Cluster, namespace: str, serving: str, prometheus: Any,
        activator_service: str, tmp_path: Path) -> None:
    cluster = wattserve_api
    op = Operator(cluster, namespace, tmp_path, extra=(
        "--prometheus-url", prometheus.url, "--autoscale-interval", "2",
        "--promql-window", "10s"))
    op.start()
    timings: dict[str, Any] = {}
    try:
        cluster.apply(md_manifest(
            NAME, namespace, slo={"latencyP95Ms": 1500},
            expectedLoad={"requestsPerSecond": "0.1", "promptTokens": 32, "outputTokens": 16},
            scaling={"minReplicas": 0, "maxReplicas": 2, "idleTimeoutSeconds": 30,
                     "scaleDownDelaySeconds": 10}))
        wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)
        assert _replicas(cluster, namespace) == 1
        placed = time.monotonic()

        # 1. Idle for the timeout: the Deployment goes to 0 and status says so.
        wait_for(lambda: _replicas(cluster, namespace) == 0, timeout=120, interval=1,
                 what="Deployment scaled to zero after the idle timeout")
        timings["to_zero_s"] = round(time.monotonic() - placed, 1)
        md = wait_condition(cluster, namespace, NAME, "Scaled", "True", "ScaledToZero",
                            timeout=20)
        idle = md["status"]["idle"]
        assert idle["timeoutSeconds"] == 30 and idle["reason"] == "Override"
        assert idle["scaledToZeroAt"]
        assert md["status"]["replicas"]["desired"] == 0
        assert md["status"]["lastScale"]["to"] == 0
        md = wait_condition(cluster, namespace, NAME, "Ready", "True", "ScaledToZero",
                            timeout=20)
        eps = wait_for(lambda: _activator_slice(cluster, namespace), timeout=30,
                       what="the model's Service routes to the activator")
        assert eps["endpoints"][0]["addresses"] == [ACTIVATOR_IP]
        table = cluster.kubectl("get", "md", NAME, "-n", namespace).stdout
        assert "ScaledToZero" in table and " 0 " in table
        timings["kubectl_get_md"] = table.strip().splitlines()

        # 2. Concurrent requests to the activator: one wake-up, every one answered.
        discovery = PodNetworkStandIn(cluster, serving)
        results: list[dict[str, Any]] = []
        woke = time.monotonic()
        worker = threading.Thread(target=_run_activator,
                                  args=(discovery, namespace, HELD, results), daemon=True)
        worker.start()
        wait_for(lambda: _replicas(cluster, namespace) == 1, timeout=60, interval=0.25,
                 what="Deployment 0 -> 1 after the activation")
        timings["wake_to_scaled_s"] = round(time.monotonic() - woke, 2)
        worker.join(timeout=180)
        assert not worker.is_alive(), "held requests never completed"
        timings["requests"] = [{k: r[k] for k in ("status", "s", "held")}
                               for r in results if "status" in r]
        answered = [r for r in results if "status" in r]
        assert len(answered) == HELD
        assert [r["status"] for r in answered] == [200] * HELD, answered
        assert discovery.activations == 1 and results[-1]["metrics"] == 1
        assert discovery.seen_pods  # a real Ready pod of the Deployment was found
        md = get_md(cluster, namespace, NAME)
        assert md["status"]["lastScale"]["reason"] == "Activated"
        assert contract.ANNOTATION_ACTIVATION in md["metadata"]["annotations"]
        activated = [e for e in events_for(cluster, namespace, NAME)
                     if e["reason"] == "Activated"]
        assert len(activated) == 1 and activated[0].get("count", 1) == 1

        # 3. Ready: the activator leaves the path (its slice is deleted), cold start learned.
        wait_for(lambda: _activator_slice(cluster, namespace) is None, timeout=30,
                 what="the activator EndpointSlice deleted once a replica is Ready")
        md = wait_for(lambda: (m := get_md(cluster, namespace, NAME))["status"].get(
            "idle", {}).get("lastColdStartSeconds") is not None and m, timeout=30,
            what="the observed wake-to-Ready time in status.idle")
        timings["observed_cold_start_s"] = md["status"]["idle"]["lastColdStartSeconds"]
    finally:
        op.stop()
        sys.stderr.write(f"[scale-to-zero] {json.dumps(timings, indent=1)}\n")
