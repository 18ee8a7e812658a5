"""The whole loop on real pods (issue 11, item 4): on the dev cluster's real node,

    helm install wattserve charts/wattserve -n wattserve-system   (+ the example pools)
    kubectl apply -f examples/models/smollm2-135m-oci.yaml

give a Ready operator pod (the chart's image, built here, running on the real node) and a
real SmolLM2 serving pod (init container copies the model image's GGUF) that answers a chat
completion through its Service's ClusterIP from the host. Both namespaces enforce the
restricted Pod Security Standard. Then faults on those real pods (issue 11, item 5): the
serving container SIGKILLed mid-request (the request ends, with an answer or a clean error;
the container restarts and serves), the serving pod deleted (replaced, serves), the operator
container SIGKILLed (restarts; the model stays Ready). Nothing here is simulated: no kwok pod
takes part.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, unique_name, wait_for
from wattserve.devcluster import containerd, realnode
from wattserve.devcluster.nodeconfig import POOL_LABEL, POOL_NAME
from wattserve.devcluster.state import ClusterState
from wattserve.render.meta import selector_labels

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "wattserve"
POOL_VALUES = CHART / "examples" / "pools-values.yaml"
MODEL = REPO / "examples" / "models" / "smollm2-135m-oci.yaml"
RELEASE, RELEASE_NS = "wattserve", "wattserve-system"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
# The operator's pods only (the activator's, when enabled, share app.kubernetes.io/name).
OPERATOR_PODS = "app.kubernetes.io/name=wattserve,app.kubernetes.io/component=operator"


def _node_paths(cluster: Cluster) -> containerd.Paths:
    st = ClusterState.load(Path(cluster.extra["state_dir"]))
    assert st is not None and st.real_node, "the session dev cluster has no real node"
    dirs = realnode.dirs_for(st)
    return containerd.Paths(dirs.containerd_root, dirs.containerd_state, dirs.conf, dirs.cni_conf)


def require_real_node(cluster: Cluster) -> ClusterState:
    """The session dev cluster's state, or skip (with why) where no real node runs."""
    if cluster.external:
        pytest.skip("external cluster: the dev cluster's real node is not there")
    why = realnode.host_reason()
    if why is not None:
        pytest.skip(f"this machine cannot run a real node: {why}")
    st = ClusterState.load(Path(cluster.extra["state_dir"]))
    if st is None or not st.real_node:
        pytest.skip("the session dev cluster has no real node (WATTSERVE_TEST_REAL_NODE=0?)")
    return st


@pytest.fixture(scope="module")
def node_images(kube_cluster: Cluster) -> list[str]:
    require_real_node(kube_cluster)
    listing = containerd.ctr(_node_paths(kube_cluster), "images", "ls", "-q").stdout.split()
    wanted = [
        "ghcr.io/wattserve/wattserve-operator:0.1.0",
        "ghcr.io/wattserve/wattserve-serving-cpu:0.1.0",
        "ghcr.io/wattserve/model-smollm2-135m:q4_1",
    ]
    missing = [w for w in wanted if w not in listing]
    assert not missing, f"images not on the real node (see the `up` log): {missing}"
    return wanted


def _helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    assert cluster.helm is not None, "helm not built"
    return subprocess.run(
        [str(cluster.helm), *args],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _restricted_namespace(cluster: Cluster, name: str) -> None:
    cluster.kubectl("create", "namespace", name, check=False)
    cluster.kubectl("label", "--overwrite", "namespace", name, RESTRICTED)


def install_chart(cluster: Cluster, *extra: str) -> None:
    """``helm upgrade --install`` the chart with the example pools (+ ``extra`` helm args)."""
    _restricted_namespace(cluster, RELEASE_NS)
    names = [p["name"] for p in yaml.safe_load(POOL_VALUES.read_text())["servingPools"]]
    existing = cluster.kubectl("get", "servingpools", "-o", "name", check=False).stdout
    for name in names:  # pools left by earlier tests of the session go to this release
        if f"servingpool.wattserve.dev/{name}" in existing:
            cluster.kubectl(
                "label", "--overwrite", "servingpool", name, "app.kubernetes.io/managed-by=Helm"
            )
            cluster.kubectl(
                "annotate",
                "--overwrite",
                "servingpool",
                name,
                f"meta.helm.sh/release-name={RELEASE}",
                f"meta.helm.sh/release-namespace={RELEASE_NS}",
            )
    started = time.monotonic()
    proc = _helm(
        cluster,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NS,
        "-f",
        str(POOL_VALUES),
        *extra,
        "--wait",
        "--timeout",
        "240s",
    )
    assert proc.returncode == 0, proc.stderr
    print(f"helm install -> operator Ready: {time.monotonic() - started:.1f}s")


def uninstall_chart(cluster: Cluster) -> None:
    proc = _helm(cluster, "uninstall", RELEASE, "-n", RELEASE_NS, "--wait", "--timeout", "120s")
    assert proc.returncode == 0, proc.stderr
    wait_for(
        lambda: not cluster.get_json("pods", "-n", RELEASE_NS)["items"],
        timeout=180,
        interval=1.0,
        what="the release's pods gone",
    )


@pytest.fixture(scope="module")
def chart(kube_cluster: Cluster, node_images: list[str]) -> Iterator[None]:
    install_chart(kube_cluster)
    try:
        yield
    finally:
        uninstall_chart(kube_cluster)


def _pods(cluster: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(cluster.get_json("pods", "-n", ns, "-l", selector)["items"])


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _node_pool(cluster: Cluster, node: str) -> str:
    return str(cluster.get_json("node", node)["metadata"]["labels"].get(POOL_LABEL, ""))


def test_operator_runs_as_the_charts_pod_on_the_real_node(
    kube_cluster: Cluster, chart: None
) -> None:
    pods = _pods(kube_cluster, RELEASE_NS, OPERATOR_PODS)
    assert pods and all(_ready(p) for p in pods), [p["status"].get("phase") for p in pods]
    for pod in pods:
        assert _node_pool(kube_cluster, pod["spec"]["nodeName"]) == POOL_NAME
        assert pod["spec"]["containers"][0]["image"] == "ghcr.io/wattserve/wattserve-operator:0.1.0"


def _chat(url: str) -> dict[str, Any]:
    body = json.dumps(
        {
            "model": "smollm2-135m-instruct",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "Say hi."}],
        }
    ).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


@pytest.fixture(scope="module")
def served(kube_cluster: Cluster, chart: None) -> Iterator[dict[str, Any]]:
    """SmolLM2 applied in a fresh restricted namespace; its pod Ready; timings measured."""
    ns = unique_name("wsmd")
    _restricted_namespace(kube_cluster, ns)
    try:
        md = yaml.safe_load(MODEL.read_text())
        started = time.monotonic()
        kube_cluster.kubectl("apply", "-n", ns, "-f", str(MODEL))
        name = md["metadata"]["name"]
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(name).items())
        wait_for(
            lambda: [p for p in _pods(kube_cluster, ns, selector) if _ready(p)],
            timeout=300,
            interval=1.0,
            what="a Ready serving pod",
        )
        ready_s = time.monotonic() - started
        svc = kube_cluster.get_json("service", name, "-n", ns)
        url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        url += "/v1/chat/completions"
        wait_for(lambda: _chat(url), timeout=60, interval=1.0, what="a first chat completion")
        first_s = time.monotonic() - started
        print(f"MD apply -> serving pod Ready {ready_s:.1f}s; -> first answer {first_s:.1f}s")
        yield {"ns": ns, "name": name, "selector": selector, "url": url}
    finally:
        kube_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_smollm2_pod_answers_through_its_cluster_ip(
    kube_cluster: Cluster, served: dict[str, Any]
) -> None:
    ns, name = served["ns"], served["name"]
    pods = [p for p in _pods(kube_cluster, ns, served["selector"]) if _ready(p)]
    assert pods and _node_pool(kube_cluster, pods[0]["spec"]["nodeName"]) == POOL_NAME
    reply = _chat(served["url"])
    assert reply["choices"][0]["message"]["content"].strip()
    status = kube_cluster.get_json("modeldeployment", name, "-n", ns)["status"]
    assert status["placement"]["pool"] == POOL_NAME


def _container_id(pod: dict[str, Any], container: str) -> str:
    for cs in pod["status"]["containerStatuses"]:
        if cs["name"] == container:
            return str(cs["containerID"]).split("://", 1)[1]
    raise AssertionError(f"no container {container} in {pod['metadata']['name']}")


def _restarts(pod: dict[str, Any]) -> int:
    return sum(int(cs.get("restartCount", 0)) for cs in pod["status"]["containerStatuses"])


def _sigkill(cluster: Cluster, pod: dict[str, Any]) -> None:
    """SIGKILL a pod's main container through the node's containerd (a crash, not a stop)."""
    cid = _container_id(pod, pod["spec"]["containers"][0]["name"])
    res = containerd.ctr(_node_paths(cluster), "tasks", "kill", "--signal", "SIGKILL", cid)
    assert res.returncode == 0, res.stderr


def _long_chat(url: str, out: list[object]) -> None:
    body = json.dumps(
        {
            "model": "smollm2-135m-instruct",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Tell a long story."}],
        }
    )
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            out.append(resp.status)
    except (OSError, ValueError) as exc:  # a clean error: reset, refused, 5xx
        out.append(exc)


def test_killed_serving_container_restarts_and_in_flight_requests_do_not_hang(
    kube_cluster: Cluster, served: dict[str, Any]
) -> None:
    ns, selector, url = served["ns"], served["selector"], served["url"]
    (pod,) = [p for p in _pods(kube_cluster, ns, selector) if _ready(p)]
    before = _restarts(pod)
    results: list[object] = []
    worker = threading.Thread(target=_long_chat, args=(url, results), daemon=True)
    worker.start()
    time.sleep(0.5)
    _sigkill(kube_cluster, pod)
    worker.join(timeout=70)
    assert not worker.is_alive(), "a request accepted before the kill hangs"
    assert results, results
    wait_for(
        lambda: [
            p for p in _pods(kube_cluster, ns, selector) if _ready(p) and _restarts(p) > before
        ],
        timeout=120,
        interval=1.0,
        what="the serving container restarted and Ready",
    )
    reply = wait_for(lambda: _chat(url), timeout=60, interval=1.0, what="answers again")
    assert reply["choices"][0]["message"]["content"].strip()


def test_deleted_serving_pod_is_replaced_and_serves(
    kube_cluster: Cluster, served: dict[str, Any]
) -> None:
    ns, selector, url = served["ns"], served["selector"], served["url"]
    (pod,) = [p for p in _pods(kube_cluster, ns, selector) if _ready(p)]
    kube_cluster.kubectl("delete", "pod", "-n", ns, pod["metadata"]["name"], "--wait=false")
    wait_for(
        lambda: [
            p
            for p in _pods(kube_cluster, ns, selector)
            if _ready(p) and p["metadata"]["uid"] != pod["metadata"]["uid"]
        ],
        timeout=180,
        interval=1.0,
        what="a replacement serving pod Ready",
    )
    reply = wait_for(lambda: _chat(url), timeout=60, interval=1.0, what="answers again")
    assert reply["choices"][0]["message"]["content"].strip()


def test_sigkilled_operator_pod_restarts_and_the_model_stays_ready(
    kube_cluster: Cluster, served: dict[str, Any]
) -> None:
    (op,) = [p for p in _pods(kube_cluster, RELEASE_NS, OPERATOR_PODS) if _ready(p)]
    before = _restarts(op)
    _sigkill(kube_cluster, op)
    wait_for(
        lambda: [
            p
            for p in _pods(kube_cluster, RELEASE_NS, OPERATOR_PODS)
            if _ready(p) and _restarts(p) > before
        ],
        timeout=120,
        interval=1.0,
        what="the operator container restarted and Ready",
    )
    status = kube_cluster.get_json("modeldeployment", served["name"], "-n", served["ns"])
    ready = [c for c in status["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert _chat(served["url"])["choices"]
