"""The live check: the real operator autoscales on real metrics of the real model.

* a real control plane (``kube_cluster``; kwok node pools: pods are scheduled by the real
  scheduler and marked Ready by kwok, but run nothing);
* the real serving app serving SmolLM2-135M (llama.cpp, 1 thread) as a local process,
  labelled as the test's ModelDeployment (namespace + name) — the one process stands in
  for the Deployment's replicas;
* a real Prometheus (Debian's ``prometheus``) scraping it every second;
* the operator subprocess with ``--prometheus-url``, ``--autoscale-interval 2`` and
  ``--promql-window 10s``.

No load -> replicas stay at the minimum; a bounded load step -> the Deployment scales up and
the new pods land on ``cpu-general`` nodes; load stops -> back down after the 10 s delay;
Prometheus stopped -> replicas hold, ``Scaled=Unknown/MetricsUnavailable``, one Warning.
The measured reaction times are printed (``-s``) and recorded in
docs/benchmarks-autoscale.md, "Live check".
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubeutil import Cluster, wait_for
from test_operator_support import (  # noqa: F401  (fixtures are used by name)
    Operator,
    condition,
    events_for,
    free_port,
    get_md,
    md_manifest,
    node_pool,
    pods_of,
    wait_condition,
    wattserve_api_fixture,
)

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from e2e.harness.loadgen import run_load  # noqa: E402
from e2e.harness.prometheus import LocalPrometheus, Target  # noqa: E402

pytestmark = pytest.mark.integration
NAME = "smollm2"
MODEL = "smollm2-135m-instruct"
POOL = "cpu-general"
MIN, MAX = 1, 3
LOAD_RPS, LOAD_S = 10.0, 20.0  # above what the one real process serves (~7 req/s here)
SCALE_DOWN_DELAY_S = 10


def _serve_binary() -> str:
    found = shutil.which("wattserve-serve")
    if found is None:
        pytest.fail("wattserve-serve is not installed: bash serving/install-deps.sh", pytrace=False)
    return found


@pytest.fixture(name="serving")
def serving_fixture(namespace: str, tmp_path: Path) -> Iterator[str]:
    """The real SmolLM2 serving process, labelled as ``namespace/NAME``; yields its URL."""
    port = free_port()
    env = dict(os.environ) | {"WATTSERVE_MODEL_DEPLOYMENT": NAME,
                              "WATTSERVE_NAMESPACE": namespace, "WATTSERVE_POOL": POOL,
                              "WATTSERVE_MODEL_NAME": MODEL, "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "serving.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [_serve_binary(), "--model", "smollm2", "--engine", "llamacpp", "--port", str(port),
         "--server", "uvicorn", "--threads", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"serving exited: {(tmp_path / 'serving.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=120, interval=0.5, what="serving /health")
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()


@pytest.fixture(name="prometheus")
def prometheus_fixture(serving: str, tmp_path: Path) -> Iterator[LocalPrometheus]:
    if not Path(shutil.which("prometheus") or "/usr/bin/prometheus").exists():
        pytest.fail("no prometheus binary: apt-get install prometheus", pytrace=False)
    prom = LocalPrometheus(tmp_path / "prometheus", scrape_interval=1.0)
    prom.start()
    try:
        prom.set_targets([Target("serving", serving.removeprefix("http://"))])
        yield prom
    finally:
        prom.stop()


def _load(url: str, rate: float, duration_s: float) -> Any:
    return asyncio.run(run_load(url, MODEL, rate, duration_s, max_tokens=16, max_in_flight=32,
                                max_requests=int(rate * duration_s) + 1, timeout_s=60))


def _deployment_replicas(cluster: Cluster, ns: str) -> int:
    return int(cluster.get_json("deployment", NAME, "-n", ns)["spec"]["replicas"])


def _ready_on_pool(cluster: Cluster, ns: str, count: int) -> list[Any] | None:
    pods = [p for p in pods_of(cluster, ns, NAME) if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != count:
        return None
    for pod in pods:
        node = pod["spec"].get("nodeName")
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in pod.get("status", {}).get("conditions", []))
        if not node or not ready or node_pool(cluster, node) != POOL:
            return None
    return pods


def _rate(prom: LocalPrometheus, ns: str) -> float | None:
    result = prom.query(f'sum(rate(wattserve_requests_total{{namespace="{ns}", '
                        f'model_deployment="{NAME}"}}[10s]))')
    return float(result[0]["value"][1]) if result else None


def test_live_autoscaling_on_real_metrics(wattserve_api: Cluster, namespace: str,
                                          serving: str, prometheus: LocalPrometheus,
                                          tmp_path: Path) -> None:
    cluster = wattserve_api
    # Warm up: the request counter series exists only after the first request; then let
    # the 10 s window pass so the autoscaler starts from "no load".
    warm = _load(serving, 2.0, 1.5)
    assert warm.ok >= 2, warm.errors
    wait_for(lambda: _rate(prometheus, namespace) is not None, timeout=30,
             what="Prometheus scraped the serving app")
    wait_for(lambda: _rate(prometheus, namespace) == 0.0, timeout=40, interval=1,
             what="the warm-up left the 10 s rate window")

    op = Operator(cluster, namespace, tmp_path, extra=(
        "--prometheus-url", prometheus.url, "--autoscale-interval", "2",
        "--promql-window", "10s"))
    op.start()
    timings: dict[str, float] = {}
    try:
        cluster.apply(md_manifest(
            NAME, namespace,
            slo={"latencyP95Ms": 1500},
            expectedLoad={"requestsPerSecond": "0.1", "promptTokens": 32, "outputTokens": 16},
            scaling={"minReplicas": MIN, "maxReplicas": MAX, "targetUtilizationPercent": 70,
                     "scaleUpDelaySeconds": 0,
                     "scaleDownDelaySeconds": SCALE_DOWN_DELAY_S}))
        wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)

        # 1. No load: the autoscaler decides (Scaled=True/Steady) and stays at the minimum.
        md = wait_condition(cluster, namespace, NAME, "Scaled", "True", "Steady", timeout=30)
        assert md["status"]["observed"]["requestRate"] == 0
        assert md["status"]["scaler"]["replicas"] == MIN
        time.sleep(6)  # three more ticks
        assert _deployment_replicas(cluster, namespace) == MIN
        assert condition(get_md(cluster, namespace, NAME), "Scaled")["reason"] == "Steady"

        # 2. A load step: the Deployment scales up, the new pods land on cpu-general.
        result: dict[str, Any] = {}
        load_start = time.monotonic()
        worker = threading.Thread(target=lambda: result.update(
            load=_load(serving, LOAD_RPS, LOAD_S)), daemon=True)
        worker.start()
        wait_for(lambda: _deployment_replicas(cluster, namespace) > MIN, timeout=LOAD_S,
                 interval=0.25, what="Deployment scale-up under load")
        timings["scale_up_s"] = time.monotonic() - load_start
        under_load = wait_for(
            lambda: (m := get_md(cluster, namespace, NAME))["status"].get("observed", {}).get(
                "joulesPerToken") is not None and m, timeout=LOAD_S, what="observed J/token")
        observed = under_load["status"]["observed"]
        assert observed["usdPerHour"] > 0 and observed["energySource"] == "wattserve"
        assert observed["requestRate"] > 0 and observed["tokensPerSecond"] > 0
        assert observed["gramsCO2PerMillionTokens"] > 0
        assert under_load["status"]["current"]["source"] == "observed"
        assert under_load["status"]["lastScale"]["from"] == MIN
        peak = _deployment_replicas(cluster, namespace)
        wait_for(lambda: _ready_on_pool(cluster, namespace, peak), timeout=60,
                 what=f"{peak} pods Ready on {POOL}")
        worker.join(timeout=LOAD_S + 90)
        assert not worker.is_alive(), "load generator did not stop"
        load = result["load"]
        load_stop = time.monotonic()
        timings["load_ok"], timings["load_sent"] = load.ok, load.sent
        timings["load_p95_s"] = load.percentile(0.95)
        peak = max(peak, _deployment_replicas(cluster, namespace))
        timings["peak_replicas"] = peak

        # 3. Load stops: back to the minimum after the scale-down delay.
        wait_for(lambda: _deployment_replicas(cluster, namespace) == MIN, timeout=90,
                 interval=0.5, what="Deployment scale-down after the load")
        timings["scale_down_s"] = time.monotonic() - load_stop
        scaled = [e for e in events_for(cluster, namespace, NAME) if e["reason"] == "Scaled"]
        assert len(scaled) >= 2 and all(e["type"] == "Normal" for e in scaled)
        md = get_md(cluster, namespace, NAME)
        assert md["status"]["lastScale"]["to"] == MIN
        assert md["status"]["replicas"]["desired"] == MIN

        # 4. Prometheus gone: fail-static, Scaled=Unknown, one Warning for the outage.
        prometheus.stop()
        outage_start = time.monotonic()
        wait_condition(cluster, namespace, NAME, "Scaled", "Unknown", "MetricsUnavailable",
                       timeout=20)
        timings["outage_detected_s"] = time.monotonic() - outage_start
        time.sleep(8)  # four more ticks within the same outage
        md = get_md(cluster, namespace, NAME)
        assert condition(md, "Scaled")["reason"] == "MetricsUnavailable"
        assert md["status"]["replicas"]["desired"] == MIN
        assert _deployment_replicas(cluster, namespace) == MIN
        warnings = wait_for(lambda: [e for e in events_for(cluster, namespace, NAME)
                                     if e["reason"] == "MetricsUnavailable"] or None,
                            timeout=10, what="the MetricsUnavailable Warning")
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert warnings[0].get("count", 1) == 1
        metrics = op.metrics()
        assert (f'wattserve_operator_desired_replicas{{model_deployment="{NAME}",'
                f'namespace="{namespace}",pool="{POOL}"}} {MIN}.0') in metrics
        assert "wattserve_operator_predicted_p95_seconds{" in metrics
    finally:
        op.stop()
        sys.stderr.write(f"[autoscale-live] {json.dumps(timings)}\n")
        out = os.environ.get("WATTSERVE_LIVE_CHECK_OUT")
        if out:
            Path(out).write_text(json.dumps(timings, indent=2))
        if os.environ.get("WATTSERVE_SHOW_OPERATOR_LOG"):
            sys.stderr.write(op.log())
