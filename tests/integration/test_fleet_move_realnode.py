"""A fleet move on REAL pods with zero dropped requests (issue 18, item 2).

Two ServingPools are both backed by the session cluster's one real node, through different
labels of that node (``wattserve.dev/pool=cpu-local`` and ``kubernetes.io/hostname=<node>``),
so the moved model serves from real llama.cpp pods on both sides. SmolLM2 (the ``oci://``
model image) is placed on pool ``a``, the cheaper one; then ``a``'s price rises so that
``b`` is far better and the operator (run as `wattserve operator` runs it, short dwell time)
moves it make-before-break, while a bounded load loop on the host sends chat completions
through the model's Service ClusterIP (kube-proxy) the whole time, one new connection per
request, no retries. Checked: every request answered 200; the new pod Ready and in the
Service's endpoints before the old pod leaves them; at every sample the Service has a ready
endpoint; the old pod is gone at the end. Figures are printed for docs/benchmarks-fleet.md.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, unique_name, wait_for
from test_operator_support import (  # noqa: F401  (fixtures are used by name)
    Operator,
    get_md,
    wattserve_api_fixture,
)
from test_real_pods_loop import MODEL, _ready, node_images  # noqa: F401
from wattserve import contract
from wattserve.devcluster.nodeconfig import POOL_LABEL, POOL_NAME
from wattserve.render.meta import selector_labels

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WORKERS = 2  # concurrent request loops (the node has 2 vCPUs; llama.cpp serves one at a time)
LOAD_LIMIT_S = 420.0  # the load loop stops by itself after this, whatever happens
HOSTNAME_LABEL = "kubernetes.io/hostname"


def _pool(name: str, selector: dict[str, str], price: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "pools.yaml").read_text()) if d]
    pool = copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == POOL_NAME))
    pool["metadata"] = {"name": name}
    pool["spec"]["nodeSelector"] = selector
    pool["spec"].pop("tolerations", None)
    pool["spec"]["pricing"]["usdPerNodeHour"] = price
    return pool


@pytest.fixture(name="two_pools")
def two_pools_fixture(wattserve_api: Cluster, node_images: list[str]  # noqa: F811
                      ) -> Iterator[tuple[str, str]]:
    cluster = wattserve_api
    nodes = [n for n in cluster.get_json("nodes", "-l", f"{POOL_LABEL}={POOL_NAME}")["items"]
             if n["metadata"]["labels"].get("type") != "kwok"]
    assert len(nodes) == 1, "the session dev cluster has no real node"
    host = nodes[0]["metadata"]["labels"][HOSTNAME_LABEL]
    suffix = unique_name("mv")[3:]
    a, b = f"mv-a-{suffix}", f"mv-b-{suffix}"
    # SmolLM2 at 0.1 req/s takes 1 of the node's 2 vCPUs: $0.01/h on a, $0.03/h on b, both
    # below the example pools (cpu-general: $0.05/h), so it lands on a.
    cluster.apply(_pool(a, {POOL_LABEL: POOL_NAME}, "0.02"))
    cluster.apply(_pool(b, {HOSTNAME_LABEL: host}, "0.06"))
    try:
        yield a, b
    finally:
        cluster.kubectl("delete", "servingpool", a, b, "--ignore-not-found")


@pytest.fixture(name="mover_operator")
def mover_operator_fixture(two_pools: tuple[str, str], wattserve_api: Cluster,
                           namespace: str, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(wattserve_api, namespace, tmp_path, extra=("--rebalance-dwell-seconds", "5"))
    op.start()
    try:
        yield op
    finally:
        op.stop()
        if sys.exc_info()[0] is not None:
            sys.stderr.write(op.log()[-4000:])


class Load:
    """``WORKERS`` loops of chat completions through the Service, each a new connection."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model
        self.results: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(WORKERS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _loop(self) -> None:
        body = json.dumps({"model": self.model, "max_tokens": 4,
                           "messages": [{"role": "user", "content": "Say hi."}]}).encode()
        ends = time.monotonic() + LOAD_LIMIT_S
        while not self.stop.is_set() and time.monotonic() < ends:
            started = time.monotonic()
            out: dict[str, Any] = {"start": started}
            req = urllib.request.Request(self.url, data=body,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    answer = json.loads(resp.read())
                    out["status"] = resp.status
                    out["ok"] = resp.status == 200 and bool(answer.get("choices"))
            except urllib.error.HTTPError as err:
                out.update(status=err.code, ok=False, error=err.read()[:200].decode())
            except (OSError, ValueError) as err:
                out.update(ok=False, error=repr(err))
            out["end"] = time.monotonic()
            with self.lock:
                self.results.append(out)

    def done(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.results)


class Endpoints:
    """Samples the Service's EndpointSlices and the model's pods (bounded, every ~0.5 s)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.cluster, self.ns, self.name = cluster, namespace, name
        self.samples: list[tuple[float, dict[str, bool], dict[str, str]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        ends = time.monotonic() + LOAD_LIMIT_S
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(self.name).items())
        while not self.stop.is_set() and time.monotonic() < ends:
            now = time.monotonic()
            slices = self.cluster.get_json(
                "endpointslices", "-n", self.ns, "-l", f"kubernetes.io/service-name={self.name}")
            ready = {addr: bool((ep.get("conditions") or {}).get("ready"))
                     for s in slices["items"] for ep in s.get("endpoints") or ()
                     for addr in ep.get("addresses") or ()}
            pods = {p["status"].get("podIP", ""): p["metadata"]["labels"].get(
                        contract.LABEL_K8S_POOL, "")
                    for p in self.cluster.get_json("pods", "-n", self.ns, "-l", selector)["items"]
                    if p["status"].get("podIP")}
            self.samples.append((now, ready, pods))
            self.stop.wait(0.5)


def _model_pods(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in selector_labels(name).items())
    return list(cluster.get_json("pods", "-n", ns, "-l", selector)["items"])


def test_a_move_between_two_real_pools_drops_no_request(
        two_pools: tuple[str, str], mover_operator: Operator, namespace: str) -> None:
    cluster = mover_operator.cluster
    a, b = two_pools
    md = yaml.safe_load(MODEL.read_text())
    md["metadata"]["namespace"] = namespace
    md["spec"]["scaling"].update({"minReplicas": 1, "maxReplicas": 1})
    name, model = md["metadata"]["name"], md["spec"]["model"]["name"]
    figures: dict[str, Any] = {}
    load: Load | None = None
    watch = Endpoints(cluster, namespace, name)
    try:
        cluster.apply(md)
        (old,) = wait_for(lambda: [p for p in _model_pods(cluster, namespace, name)
                                   if _ready(p)] or None,
                          timeout=240, interval=1.0, what="the first serving pod Ready")
        assert get_md(cluster, namespace, name)["status"]["placement"]["pool"] == a
        assert old["metadata"]["labels"][contract.LABEL_K8S_POOL] == a
        svc = cluster.get_json("service", name, "-n", namespace)
        url = (f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
               "/v1/chat/completions")
        load = Load(url, model)
        load.start()
        watch.thread.start()
        wait_for(lambda: sum(1 for r in load.done() if r["ok"]) >= 4, timeout=60,
                 what="four answers through the Service before the move")
        time.sleep(6)  # past the 5 s dwell time on pool a

        # a's price rises 25x: b now saves 88 % of the model's $/1M tokens.
        moved = time.monotonic()
        cluster.kubectl("patch", "servingpool", a, "--type", "merge", "-p",
                        json.dumps({"spec": {"pricing": {"usdPerNodeHour": "0.5"}}}))
        wait_for(lambda: get_md(cluster, namespace, name)["status"]["placement"].get("pool")
                 == b, timeout=120, interval=0.5, what=f"status.placement.pool = {b}")
        figures["replanned_s"] = round(time.monotonic() - moved, 1)
        new = wait_for(lambda: [p for p in _model_pods(cluster, namespace, name)
                                if p["metadata"]["labels"].get(contract.LABEL_K8S_POOL) == b
                                and _ready(p)] or None,
                       timeout=240, interval=0.5, what=f"a Ready pod on {b}")
        figures["new_pod_ready_s"] = round(time.monotonic() - moved, 1)
        wait_for(lambda: [p["metadata"]["name"] for p in _model_pods(cluster, namespace, name)]
                 == [new[0]["metadata"]["name"]], timeout=180, interval=0.5,
                 what="the old pod gone (drained)")
        figures["old_pod_gone_s"] = round(time.monotonic() - moved, 1)
        done_moving = time.monotonic()
        time.sleep(5)  # requests keep going to the new pod alone
    finally:
        if load is not None:
            load.finish()
        watch.stop.set()
        if watch.thread.is_alive():
            watch.thread.join(timeout=30)
        results = load.done() if load is not None else []
        failed = [r for r in results if not r["ok"]]
        figures.update(requests=len(results), failed=len(failed), failures=failed[:5])
        sys.stderr.write(f"\n[realnode fleet move] {json.dumps(figures, indent=1)}\n")

    old_ip, new_ip = old["status"]["podIP"], new[0]["status"]["podIP"]
    during = [r for r in results if moved <= r["start"] <= done_moving]
    seconds = sorted(r["end"] - r["start"] for r in results)
    figures.update(during_move=len(during), latency_p50_s=round(statistics.median(seconds), 2),
                   latency_max_s=round(seconds[-1], 2))
    sys.stderr.write(f"[realnode fleet move] {json.dumps(figures)}\n")
    assert not failed, failed[:5]
    assert len(during) >= 10, figures  # the loop really ran through the move

    # Make-before-break, seen in the Service's endpoints: a ready endpoint at every sample,
    # the new pod (on b) ready there before the old one (on a) stops being ready.
    samples = [s for s in watch.samples if moved <= s[0]]
    assert samples and all(any(ready.values()) for _, ready, _ in samples), samples[:3]
    new_ready = next(t for t, ready, _ in samples if ready.get(new_ip))
    old_out = next(t for t, ready, _ in samples if not ready.get(old_ip))
    assert new_ready <= old_out, (new_ready - moved, old_out - moved)
    figures["service_switch_s"] = round(old_out - moved, 1)
    pools_seen = {pool for _, _, pods in samples for ip, pool in pods.items() if ip == new_ip}
    assert pools_seen == {b}
    sys.stderr.write(f"[realnode fleet move] {json.dumps(figures)}\n")
