"""The kind provider's e2e (``WATTSERVE_E2E_PROVIDER=kind``, e2e/kind/run.sh): on the
cluster e2e/kind/up.sh made (the chart's operator in-cluster, the in-cluster Prometheus),
SmolLM2 is applied, placed on a CPU pool, served for real by its pod and answered through
the real ``openai`` client, scraped by Prometheus, and removed with its children.

Everything is reached through the API server's service proxy (``kubectl proxy``): a
ClusterIP cannot be reached from a kind host, and ``kubectl port-forward`` pins one pod.
The GPU pools of the kind cluster run no image (no GPU), so only placement is checked
there. The dev-cluster suite (e2e/test_full_stack.py) needs the local real node (its
containerd, pod subnet and host Prometheus); e2e/conftest.py collects one or the other.

Tests run in file order and share the module's state.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster
from wattserve.devcluster.processes import free_port

from e2e.harness.stack import REPO, Kube, condition, http_ok, md_status, wait_until

RELEASE = os.environ.get("WATTSERVE_E2E_RELEASE", "wattserve")
RELEASE_NAMESPACE = os.environ.get("WATTSERVE_E2E_RELEASE_NAMESPACE", "wattserve-system")
PROM_NAMESPACE = os.environ.get("WATTSERVE_E2E_PROMETHEUS_NAMESPACE", "monitoring")
PROM_SERVICE = os.environ.get("WATTSERVE_E2E_PROMETHEUS_SERVICE", "prometheus")
NAMESPACE = "e2e-kind-models"
EXAMPLE = REPO / "examples" / "models" / "smollm2-135m-oci.yaml"
GPU_EXAMPLE = REPO / "examples" / "models" / "llama-8b-low.yaml"
CPU_POOLS = {"cpu-general", "cpu-local"}


@pytest.fixture(scope="module")
def kube(kube_cluster: Cluster) -> Kube:
    assert kube_cluster.external, "the kind provider needs KUBECONFIG pointing at the cluster"
    return Kube(kube_cluster.kubeconfig, kube_cluster.kubectl_bin.parent)


@pytest.fixture(scope="module")
def proxy(kube: Kube) -> Iterator[str]:
    """``kubectl proxy`` on a loopback port: the API server's service proxy from the host."""
    port = free_port()
    proc = subprocess.Popen(["kubectl", "proxy", f"--port={port}", "--address=127.0.0.1"],
                            env=kube.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(url + "/version"), 30, "kubectl proxy")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _manifest(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["metadata"]["namespace"] = NAMESPACE
    return doc


def _name(path: Path) -> str:
    return str(_manifest(path)["metadata"]["name"])


def _apply_and_place(kube: Kube, path: Path) -> dict[str, Any]:
    """Apply the example into the suite's namespace; its status once Placed=True."""
    name = _name(path)
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(_manifest(path)))
    status: dict[str, Any] = wait_until(
        lambda: (s := md_status(kube, NAMESPACE, name))
        and condition(s, "Placed").get("status") == "True" and s, 120, f"{name} Placed")
    return status


def _service_url(kube: Kube, proxy: str, md_name: str) -> str:
    svc = wait_until(lambda: kube.get("services", "-n", NAMESPACE, "-l",
                                      f"wattserve.dev/model-deployment={md_name}")["items"],
                     120, f"the Service of {md_name}")[0]
    port = svc["spec"]["ports"][0]["port"]
    return f"{proxy}/api/v1/namespaces/{NAMESPACE}/services/{svc['metadata']['name']}:{port}/proxy"


def _prometheus(proxy: str, query: str) -> list[dict[str, Any]]:
    url = (f"{proxy}/api/v1/namespaces/{PROM_NAMESPACE}/services/{PROM_SERVICE}:9090/proxy"
           f"/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_the_charts_operator_runs_in_the_cluster(kube: Kube) -> None:
    def ready_operator() -> list[dict[str, Any]]:
        pods = kube.get("pods", "-n", RELEASE_NAMESPACE, "-l",
                        "app.kubernetes.io/name=wattserve,app.kubernetes.io/component=operator")
        return [p for p in pods["items"] if any(c["type"] == "Ready" and c["status"] == "True"
                                                for c in p["status"].get("conditions", []))]

    wait_until(ready_operator, 180, "the chart's operator pod Ready")
    pools = {p["metadata"]["name"] for p in kube.get("servingpools")["items"]}
    assert pools >= CPU_POOLS, pools
    kube.kubectl("create", "namespace", NAMESPACE, check=False)


def test_smollm2_is_placed_on_a_cpu_pool_and_ready(kube: Kube) -> None:
    name = _name(EXAMPLE)
    status = _apply_and_place(kube, EXAMPLE)
    assert status["placement"]["pool"] in CPU_POOLS, status["placement"]
    assert status["placement"]["engine"] == "llamacpp"
    wait_until(lambda: condition(md_status(kube, NAMESPACE, name), "Ready").get("status")
               == "True", 600, f"{name} Ready (its pod pulls nothing: the images were loaded)")
    pods = kube.get("pods", "-n", NAMESPACE, "-l", f"wattserve.dev/model-deployment={name}")
    nodes = {p["spec"].get("nodeName") for p in pods["items"]}
    pools = {kube.get("node", n)["metadata"]["labels"].get("wattserve.dev/pool") for n in nodes}
    assert pools == {status["placement"]["pool"]}, (nodes, pools)


def test_real_tokens_through_the_service_with_the_openai_client(kube: Kube, proxy: str) -> None:
    from openai import OpenAI

    name = _name(EXAMPLE)
    model = _manifest(EXAMPLE)["spec"]["model"]["name"]
    client = OpenAI(base_url=_service_url(kube, proxy, name) + "/v1", api_key="unused",
                    timeout=120, max_retries=2)
    reply = client.chat.completions.create(
        model=model, max_tokens=16, temperature=0,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(
        model=model, max_tokens=8, stream=True,
        messages=[{"role": "user", "content": "Say hi"}]))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert model in [m.id for m in client.models.list().data]


def test_the_in_cluster_prometheus_scrapes_the_serving_pod(proxy: str) -> None:
    query = f'sum(wattserve_requests_total{{model_deployment="{_name(EXAMPLE)}"}})'
    rows = wait_until(lambda: [r for r in _prometheus(proxy, query) if float(r["value"][1]) >= 2],
                      90, "Prometheus to scrape the requests of the serving pod")
    assert float(rows[0]["value"][1]) >= 2


def test_a_gpu_model_is_placed_on_a_gpu_pool(kube: Kube) -> None:
    """No GPU on kind: the fake nvidia.com/gpu capacity books it; its pod runs no image."""
    name = _name(GPU_EXAMPLE)
    status = _apply_and_place(kube, GPU_EXAMPLE)
    assert status["placement"]["pool"].startswith("gpu-"), status["placement"]
    assert status["placement"]["engine"] == "vllm"
    deployment = wait_until(lambda: kube.get("deployments", "-n", NAMESPACE, "-l",
                                             f"wattserve.dev/model-deployment={name}")["items"],
                            60, f"the Deployment of {name}")[0]
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1


def test_deleting_the_models_removes_their_children(kube: Kube) -> None:
    started = time.monotonic()
    kube.kubectl("delete", "md", "--all", "-n", NAMESPACE, "--wait=true", timeout=180)
    for kind in ("deployments", "services"):
        wait_until(lambda k=kind: not kube.get(k, "-n", NAMESPACE, "-l",  # type: ignore[misc]
                                               "app.kubernetes.io/managed-by=wattserve")["items"],
                   120, f"the models' {kind} garbage-collected")
    assert time.monotonic() - started < 300
    kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
