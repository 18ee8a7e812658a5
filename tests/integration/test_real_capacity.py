"""A scale-up on the real node adds real capacity (issue 11, item 4): the real-node pool
`cpu-local` (2 vCPU, `tuning.cpuMillisPerThread: 500`) holds two 1-thread SmolLM2 replicas,
both run on the real node, both take load through the Service's ClusterIP, and together they
answer more requests per second than one does.

Everything is real: the chart's operator pod renders the pods (Burstable: 500m requested, 1
CPU limit, llama.cpp threads from the limit), containerd runs them, kube-proxy spreads the
connections. The throughput comparison is closed loop (4 users back to back, a new connection
per request) for the same time on the same machine, one after the other.

A second pod can only add CPU that is free: every pod together runs in the kubelet's kubepods
cgroup (weight 2 CPUs x 1024) against the machine's other runnable processes. On the shared
2-vCPU development VM all pods together got 0.83 of a core and 2 pods served 0.8-1.12 x what
1 served (docs/benchmarks-realnode.md). So the test measures the CPU that processes outside
the pods used while 2 pods served: when that left the pods less than 1.4 vCPUs, the
throughput comparison is skipped with the figures (everything before it is still asserted);
otherwise 2 pods must serve >= 1.25 x what 1 serves.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, unique_name, wait_for
from test_real_pods_loop import (  # noqa: F401  (chart, node_images are fixtures used by name)
    _node_pool,
    _pods,
    _ready,
    _restricted_namespace,
    chart,
    node_images,
)

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from wattserve import contract  # noqa: E402
from wattserve.devcluster.nodeconfig import POOL_NAME  # noqa: E402
from wattserve.render.meta import selector_labels  # noqa: E402

from e2e import realpods  # noqa: E402

pytestmark = pytest.mark.integration
MD = "smollm2-cap"
SECONDS = 25.0
MIN_GAIN = 1.25  # 2 pods vs 1 (closed loop) when the node's 2 vCPUs are free for the pods
MIN_FREE_CORES = 1.4  # what the pods must have had for the comparison to mean anything


def _apply(cluster: Cluster, ns: str, replicas: int) -> None:
    doc = realpods.smollm2_doc(MD, minReplicas=replicas, maxReplicas=replicas)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc))


def _ready_pods(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in selector_labels(MD).items())
    return [p for p in _pods(cluster, ns, selector)
            if _ready(p) and not p["metadata"].get("deletionTimestamp")]


def _requests_served(pod: dict[str, Any]) -> float:
    url = f"http://{pod['status']['podIP']}:{contract.SERVING_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(contract.REQUESTS_TOTAL + "{") and 'status="200"' in line)


@pytest.fixture(scope="module")
def model_ns(kube_cluster: Cluster, chart: None) -> Iterator[str]:  # noqa: F811
    ns = unique_name("wscap")
    _restricted_namespace(kube_cluster, ns)
    try:
        yield ns
    finally:
        kube_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_two_real_replicas_fit_the_real_node_take_load_and_serve_more_than_one(
    kube_cluster: Cluster, model_ns: str
) -> None:
    ns = model_ns
    _apply(kube_cluster, ns, 1)
    wait_for(lambda: _ready_pods(kube_cluster, ns), timeout=300, interval=1.0,
             what="one Ready SmolLM2 pod")
    svc = kube_cluster.get_json("service", MD, "-n", ns)
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
    (first,) = _ready_pods(kube_cluster, ns)
    resources = first["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "500m" and resources["limits"]["cpu"] == "1"
    one = asyncio.run(realpods.run_closed(url, clients=4, duration_s=SECONDS))
    assert one.ok and not one.errors, one.errors

    _apply(kube_cluster, ns, 2)
    wait_for(lambda: len(_ready_pods(kube_cluster, ns)) == 2, timeout=300, interval=1.0,
             what="two Ready SmolLM2 pods (the second must not stay Pending)")
    pods = _ready_pods(kube_cluster, ns)
    assert {_node_pool(kube_cluster, p["spec"]["nodeName"]) for p in pods} == {POOL_NAME}
    before = {p["metadata"]["name"]: _requests_served(p) for p in pods}
    pods0, (busy0, total0), t0 = realpods.pods_cpu_s(), realpods.machine_busy(), time.monotonic()
    two = asyncio.run(realpods.run_closed(url, clients=4, duration_s=SECONDS))
    pods1, (busy1, total1), t1 = realpods.pods_cpu_s(), realpods.machine_busy(), time.monotonic()
    assert two.ok and not two.errors, two.errors
    cores = os.cpu_count() or 1
    busy = (busy1 - busy0) / (total1 - total0) * cores
    pods_cores = (pods1 - pods0) / (t1 - t0) if pods0 is not None and pods1 is not None else 0.0
    free_for_pods = cores - (busy - pods_cores)
    served = {p["metadata"]["name"]: _requests_served(p) - before[p["metadata"]["name"]]
              for p in pods}
    gain = two.requests_per_s / one.requests_per_s
    figures = (f"1 pod: {one.requests_per_s:.2f} req/s p95 {one.p95():.2f}s; 2 pods: "
               f"{two.requests_per_s:.2f} req/s p95 {two.p95():.2f}s; ratio {gain:.2f}; "
               f"per pod {served}; machine busy {busy:.2f} of {cores} vCPUs, pods "
               f"{pods_cores:.2f}, left for the pods {free_for_pods:.2f}")
    print(figures)
    assert all(count >= 0.25 * two.ok for count in served.values()), served
    if free_for_pods < MIN_FREE_CORES:
        pytest.skip(f"other work left the pods {free_for_pods:.2f} vCPUs: the capacity gain "
                    f"cannot be measured on this machine now ({figures})")
    assert gain >= MIN_GAIN, f"2 pods serve {gain:.2f}x what 1 serves ({figures})"
