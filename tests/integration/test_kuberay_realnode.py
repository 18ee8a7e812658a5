"""SmolLM2 served on CPU by real Ray pods through the real KubeRay operator (issue 12, item 1).

Everything runs for real on the session dev cluster's real node (pool ``cpu-local``): the
KubeRay operator v1.5.0 (built from its Go module, on this host, reaching the Ray head through
the API server's service proxy: ``--use-kubernetes-proxy``, as an operator outside the
cluster must), the ``serving-cpu-ray`` image (built here, imported into the node's
containerd), a Ray head with its autoscaler sidecar and Ray workers as containers, Ray Serve
running the wattserve app with llama.cpp and the SmolLM2 GGUF copied from the model image.

The RayService is what wattserve renders for the ModelDeployment
``examples/models/smollm2-135m-oci.yaml`` with ``backend: rayservice``, planned on the
``cpu-local`` pool; scaling changes only Serve's ``num_replicas`` (what the operator patches),
and KubeRay's in-tree autoscaler adds and releases the Ray worker pods:

* 1 replica: the RayService goes Ready; the real ``openai`` client gets a chat completion
  through KubeRay's Serve Service (ClusterIP, through kube-proxy).
* 1 -> 2: a second Ray worker pod appears and a second Serve replica runs on it; it answers
  through that pod's own Serve proxy (Serve routes to the local replica first).
* 2 -> 1: the worker left idle is released after ``idleTimeoutSeconds``
  (``spec.scaling.scaleDownDelaySeconds``, short here).

Sizing on the 2-vCPU node (docs/benchmarks-ray.md): the renderer's head (250m, no replicas:
``num-cpus 0``) and autoscaler (100m); each worker advertises ``num-cpus 1`` to Ray (one
replica each) but requests only ``WORKER_CPU_REQUEST`` from Kubernetes here, limit 1 CPU.
The plan puts one 1-CPU replica on this node; two whole 1-CPU workers plus the head and
CoreDNS exceed its 2 CPUs, so this test squeezes the worker request (a test choice, not the
renderer's). Figures are printed (and written to ``$WATTSERVE_RAY_FIGURES`` as JSON).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from kubeutil import Cluster, unique_name, wait_for
from test_kuberay_operator import running_kuberay
from test_operator_support import Operator, wait_condition
from test_real_pods_loop import _node_paths, _ready, _restricted_namespace, require_real_node

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from wattserve import images  # noqa: E402
from wattserve.api import parse_model_deployment  # noqa: E402
from wattserve.devcluster import realnode  # noqa: E402
from wattserve.devcluster.nodeconfig import POOL_NAME  # noqa: E402
from wattserve.planning import plan  # noqa: E402
from wattserve.render import RenderInputs, RenderSettings, render_rayservice  # noqa: E402
from wattserve.render.rayservice import rayservice_name  # noqa: E402

from tests.unit.factories import example_pools  # noqa: E402
from tests.unit.test_render_support import example_md_doc  # noqa: E402

# The first test also pays for the session's real-node start and the Ray image import, and
# Ray starts slowly on 2 busy vCPUs: more than the suite's 600 s per test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
MODEL_NAME = "smollm2-135m-instruct"
RAY_IMAGE = "serving-cpu-ray"
IDLE_TIMEOUT_S = 20
WORKER_CPU_REQUEST = "700m"
SERVE_PORT, DASHBOARD_PORT = 8000, 8265
READY_TIMEOUT_S = 480


def _md_doc(namespace: str) -> dict[str, Any]:
    doc = example_md_doc("smollm2-135m-oci.yaml", namespace=namespace)
    doc["metadata"]["name"] = "smollm2-ray"
    doc["spec"]["backend"] = "rayservice"
    doc["spec"]["scaling"] = {"minReplicas": 1, "maxReplicas": 2,
                              "scaleDownDelaySeconds": IDLE_TIMEOUT_S}
    return doc


def _rendered(namespace: str, replicas: int) -> dict[str, Any]:
    md = parse_model_deployment(_md_doc(namespace))
    (pool,) = [p for p in example_pools() if p.name == POOL_NAME]
    chosen = plan(md, [pool]).chosen
    assert chosen is not None and chosen.pool == POOL_NAME, "SmolLM2 must fit the real node"
    rs = copy.deepcopy(render_rayservice(RenderInputs(md, pool, chosen, replicas,
                                                      RenderSettings())))
    rs["metadata"].pop("ownerReferences", None)  # no ModelDeployment object in this test
    worker = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert worker["rayStartParams"]["num-cpus"] == "1"
    worker["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = \
        WORKER_CPU_REQUEST
    return rs


def _pods(cluster: Cluster, ns: str, node_type: str) -> list[dict[str, Any]]:
    return list(cluster.get_json("pods", "-n", ns, "-l", f"ray.io/node-type={node_type}")
                ["items"])


def _rayservice_ready(cluster: Cluster, ns: str, name: str) -> bool:
    status = cluster.get_json("rayservice", name, "-n", ns).get("status") or {}
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or ())


def _serve_replicas(head_ip: str) -> list[dict[str, Any]]:
    """The wattserve deployment's replicas, as Serve's REST API on the head reports them."""
    url = f"http://{head_ip}:{DASHBOARD_PORT}/api/serve/applications/"
    with urllib.request.urlopen(url, timeout=10) as resp:
        details = json.loads(resp.read())
    app = details["applications"]["wattserve"]
    return list(app["deployments"]["wattserve"]["replicas"])


def _running_on(head_ip: str) -> set[str]:
    return {r["node_ip"] for r in _serve_replicas(head_ip) if r["state"] == "RUNNING"}


def _client(host: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://{host}:{SERVE_PORT}/v1", api_key="unused",
                         timeout=60, max_retries=0)


def _first_token_s(host: str) -> float:
    """Seconds to the first streamed content token of a chat completion (real client)."""
    started = time.monotonic()
    stream = _client(host).chat.completions.create(
        model=MODEL_NAME, max_tokens=8, stream=True,
        messages=[{"role": "user", "content": "Say hi."}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            took = time.monotonic() - started
            stream.close()
            return took
    raise AssertionError("the stream ended without a content token")


def _answer(host: str) -> str:
    reply = _client(host).chat.completions.create(
        model=MODEL_NAME, max_tokens=8, messages=[{"role": "user", "content": "Say hi."}])
    text = reply.choices[0].message.content or ""
    assert text.strip(), reply
    return text


def _memory_mib(cluster: Cluster, ns: str) -> dict[str, float]:
    """Working-set memory of each pod of ``ns``, from the kubelet's summary API."""
    node = _pods(cluster, ns, "head")[0]["spec"]["nodeName"]
    raw = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/stats/summary").stdout
    out: dict[str, float] = {}
    for pod in json.loads(raw).get("pods", []):
        if pod["podRef"]["namespace"] == ns:
            out[pod["podRef"]["name"]] = round(
                pod.get("memory", {}).get("workingSetBytes", 0) / 2**20, 1)
    return out


def _node_cpu_m(cluster: Cluster, node: str) -> dict[str, int]:
    """The node's allocatable CPU and the CPU requests of every pod running there (m)."""

    def milli(value: str) -> int:
        return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)

    requested = 0
    for pod in cluster.get_json("pods", "-A", "--field-selector",
                                f"spec.nodeName={node}")["items"]:
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        containers = pod["spec"]["containers"]
        regular = sum(milli(c.get("resources", {}).get("requests", {}).get("cpu", "0"))
                      for c in containers)
        init = max((milli(c.get("resources", {}).get("requests", {}).get("cpu", "0"))
                    for c in pod["spec"].get("initContainers", [])), default=0)
        requested += max(regular, init)
    allocatable = milli(cluster.get_json("node", node)["status"]["allocatable"]["cpu"])
    return {"allocatable_m": allocatable, "requested_m": requested}


def _diagnose(cluster: Cluster, ns: str) -> str:
    parts = [cluster.kubectl("get", "pods,rayservice,raycluster", "-n", ns, "-o", "wide",
                             check=False).stdout]
    events = cluster.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp",
                             check=False).stdout
    parts.append("events:\n" + "\n".join(events.splitlines()[-25:]))
    for node_type in ("head", "worker"):
        for pod in _pods(cluster, ns, node_type):
            name = pod["metadata"]["name"]
            for container in pod["spec"]["containers"]:
                log = cluster.kubectl("logs", "-n", ns, name, "-c", container["name"],
                                      "--tail=25", check=False)
                parts.append(f"--- {name}/{container['name']}:\n{log.stdout}{log.stderr}")
    log_path = cluster.extra.get("kuberay_log")
    if log_path:
        parts.append("--- KubeRay operator:\n" + Path(log_path).read_text()[-2500:])
    return "\n".join(parts)


class Figures:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def note(self, key: str, value: Any) -> None:
        self.values[key] = value
        print(f"[ray-realnode] {key}: {value}", flush=True)

    def save(self) -> None:
        path = os.environ.get("WATTSERVE_RAY_FIGURES")
        if path:
            Path(path).write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")


def _await(cluster: Cluster, ns: str, predicate: Any, timeout: float, what: str) -> Any:
    try:
        return wait_for(predicate, timeout=timeout, interval=2.0, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(cluster, ns)}") from exc


@pytest.fixture(scope="module")
def ray_node(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The Ray and model images on the real node and the KubeRay operator running (the
    node's default images are not needed: WATTSERVE_NODE_IMAGES=0 starts it faster)."""
    require_real_node(kube_cluster)
    socket = _node_paths(kube_cluster).socket
    started = time.monotonic()
    refs = images.ensure_images(socket, ["model-smollm2", RAY_IMAGE],
                                log=lambda line: print(f"[ray-realnode] {line}", flush=True))
    print(f"[ray-realnode] {refs} on the node in {time.monotonic() - started:.0f}s")
    with running_kuberay(kube_cluster, tmp_path_factory.mktemp("kuberay"),
                         "--use-kubernetes-proxy") as cluster:
        yield cluster


def _cpu_local_pool() -> dict[str, Any]:
    docs = yaml.safe_load_all((REPO / "examples" / "pools.yaml").read_text())
    (pool,) = [d for d in docs if d and d["metadata"]["name"] == POOL_NAME]
    return dict(pool)


def test_operator_runs_a_rayservice_model_deployment_to_ready_on_real_ray_pods(
        ray_node: Cluster, tmp_path: Path) -> None:
    """The operator in the loop (first in this module: its pods are gone before the
    squeezed scaling test starts): a ModelDeployment with ``backend: rayservice``, planned
    on the real node's pool, becomes a RayService that the real KubeRay runs; the operator
    reads KubeRay's real status into ``Ready=True`` and the model answers through Serve."""
    cluster, ns = ray_node, unique_name("wsrayop")
    _restricted_namespace(cluster, ns)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established",
                    "crd/modeldeployments.wattserve.dev", "--timeout=60s")
    cluster.apply(_cpu_local_pool())
    doc = _md_doc(ns)
    doc["spec"]["scaling"]["maxReplicas"] = 1
    for key in ("uid", "generation"):
        doc["metadata"].pop(key, None)
    operator = Operator(cluster, ns, tmp_path)
    operator.start()
    try:
        started = time.monotonic()
        cluster.apply(doc, "-n", ns)
        try:
            md = wait_condition(cluster, ns, "smollm2-ray", "Ready", "True",
                                timeout=READY_TIMEOUT_S)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnose(cluster, ns)}\noperator log:\n"
                                 f"{operator.log()[-2500:]}") from exc
        print(f"[ray-realnode] operator: MD apply -> Ready=True "
              f"{time.monotonic() - started:.1f}s", flush=True)
        assert md["status"]["placement"]["pool"] == POOL_NAME
        rs = cluster.get_json("rayservice", rayservice_name("smollm2-ray"), "-n", ns)
        assert rs["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
        workers = [p for p in _pods(cluster, ns, "worker") if _ready(p)]
        assert len(workers) == 1
        serve_ip = cluster.get_json("service", f"{rs['metadata']['name']}-serve-svc", "-n",
                                    ns)["spec"]["clusterIP"]
        assert _await(cluster, ns, lambda: _answer(serve_ip), 60, "an answer through Serve")
    finally:
        operator.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        wait_for(lambda: not cluster.get_json("pods", "-n", ns)["items"], timeout=180,
                 interval=2.0, what="the operator test's Ray pods gone")


@pytest.fixture(scope="module")
def served(ray_node: Cluster) -> Iterator[dict[str, Any]]:
    cluster, ns = ray_node, unique_name("wsray")
    _restricted_namespace(cluster, ns)
    figures = Figures()
    name = rayservice_name("smollm2-ray")
    try:
        started = time.monotonic()
        cluster.apply(_rendered(ns, replicas=1), "-n", ns, "--validate=strict")
        _await(cluster, ns, lambda: _rayservice_ready(cluster, ns, name), READY_TIMEOUT_S,
               "the RayService Ready")
        figures.note("apply_to_rayservice_ready_s", round(time.monotonic() - started, 1))
        svc = cluster.get_json("service", f"{name}-serve-svc", "-n", ns)
        serve_ip = svc["spec"]["clusterIP"]
        ttft = _await(cluster, ns, lambda: _first_token_s(serve_ip), 120,
                      "a first streamed token through the Serve Service")
        figures.note("apply_to_first_token_s", round(time.monotonic() - started, 1))
        figures.note("first_token_request_s", round(ttft, 2))
        yield {"ns": ns, "name": name, "serve_ip": serve_ip, "figures": figures}
    finally:
        figures.save()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_rayservice_serves_smollm2_on_real_ray_pods(ray_node: Cluster,
                                                     served: dict[str, Any]) -> None:
    cluster, ns = ray_node, served["ns"]
    (head,) = _pods(cluster, ns, "head")
    # The worker serves (the first token came through it: the head runs no replica), but
    # KubeRay's wget probes can time out on 2 busy vCPUs and turn it NotReady for a while:
    # wait for it to be Ready again rather than read one instant.
    workers = _await(cluster, ns, lambda: [
        p for p in _pods(cluster, ns, "worker") if _ready(p)], 120, "the Ray worker pod Ready")
    assert len(workers) == 1, [p["metadata"]["name"] for p in workers]
    for pod in (head, *workers):
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == realnode.node_name()  # the real node, not kwok
        assert all(c["containerID"].startswith("containerd://")
                   for c in pod["status"]["containerStatuses"])
    head_ip = head["status"]["podIP"]
    assert _running_on(head_ip) == {workers[0]["status"]["podIP"]}
    assert MODEL_NAME in {m.id for m in _client(served["serve_ip"]).models.list()}
    assert _answer(served["serve_ip"])
    memory = _memory_mib(cluster, ns)
    served["figures"].note("memory_working_set_mib_1_replica", memory)


def test_scale_up_adds_a_ray_worker_and_replica_and_scale_down_releases_it(
        ray_node: Cluster, served: dict[str, Any]) -> None:
    cluster, ns, figures = ray_node, served["ns"], served["figures"]
    (head,) = _pods(cluster, ns, "head")
    head_ip = head["status"]["podIP"]
    (first,) = _pods(cluster, ns, "worker")
    first_ip = first["status"]["podIP"]

    started = time.monotonic()
    cluster.apply(_rendered(ns, replicas=2), "-n", ns)
    second = _await(cluster, ns, lambda: [
        p for p in _pods(cluster, ns, "worker")
        if p["metadata"]["name"] != first["metadata"]["name"] and _ready(p)], 300,
        "a second Ray worker pod Ready")[0]
    figures.note("scale_up_to_worker_ready_s", round(time.monotonic() - started, 1))
    second_ip = second["status"]["podIP"]
    _await(cluster, ns, lambda: _running_on(head_ip) == {first_ip, second_ip}, 300,
           "a Serve replica RUNNING on each worker")
    _await(cluster, ns, lambda: _answer(second_ip), 60,
           "an answer from the new worker's replica")
    figures.note("scale_up_to_new_replica_serving_s", round(time.monotonic() - started, 1))
    assert _answer(first_ip) and _answer(served["serve_ip"])
    figures.note("memory_working_set_mib_2_replicas", _memory_mib(cluster, ns))
    figures.note("node_cpu_2_replicas", _node_cpu_m(cluster, head["spec"]["nodeName"]))

    started = time.monotonic()
    cluster.apply(_rendered(ns, replicas=1), "-n", ns)
    _await(cluster, ns, lambda: len(_running_on(head_ip)) == 1, 120,
           "Serve down to one replica")
    figures.note("scale_down_to_one_replica_s", round(time.monotonic() - started, 1))
    _await(cluster, ns, lambda: len(_pods(cluster, ns, "worker")) == 1, IDLE_TIMEOUT_S + 240,
           "the idle Ray worker pod released")
    figures.note("scale_down_to_worker_pod_gone_s", round(time.monotonic() - started, 1))
    (left,) = _pods(cluster, ns, "worker")
    assert _running_on(head_ip) == {left["status"]["podIP"]}
    assert _answer(served["serve_ip"])
