"""Fixtures and helpers for the operator integration tests (no tests here).

The operator runs for real as a subprocess (``python -m wattserve.controller``) against the
test cluster, scoped to the test's namespace, exactly as `wattserve operator` runs it.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, wait_for
from wattserve.devcluster.processes import free_port

REPO = Path(__file__).resolve().parents[2]
SMOLLM2 = REPO / "examples" / "models" / "smollm2-135m.yaml"
REAL_NODE_POOL = "cpu-local"


class Operator:
    """One operator process; ``restart()`` kills it (SIGKILL) and starts a new one."""

    def __init__(self, cluster: Cluster, namespace: str, log_dir: Path,
                 extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.log_dir = log_dir
        self.extra = extra
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = 0
        self.metrics_port = 0
        self.starts = 0

    def start(self, wait: bool = True) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115
        env = self.cluster.env | {"PYTHONUNBUFFERED": "1",
                                  "WATTSERVE_POOL_STATUS_SECONDS": "2"} | self.env
        cmd = [sys.executable, "-m", "wattserve.controller", "--namespace", self.namespace,
               "--standalone", "--health-port", str(self.health_port),
               "--metrics-port", str(self.metrics_port), "--resync-seconds", "5",
               *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(REPO))
        if wait:
            wait_for(self.healthy, timeout=30, what="operator /healthz")

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}: "
                                 f"{self.log()[-2000:]}")
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of the operator's /metrics (0 when absent)."""
        pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
        found = re.search(pattern, self.metrics(), re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def log(self) -> str:
        path = self.log_dir / f"operator-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session", name="wattserve_api")
def wattserve_api_fixture(kube_cluster: Cluster) -> Cluster:
    """CRDs and the example ServingPools installed (idempotent)."""
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                         str(REPO / "crds"))
    for crd in ("modeldeployments.wattserve.dev", "servingpools.wattserve.dev"):
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}",
                             "--timeout=60s")
    # The simulated pools only: these tests run the operator against kwok pods (they test
    # placement and scaling decisions, not serving). The real node's cpu-local pool is
    # exercised by test_real_node.py / test_real_pods_loop.py.
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "pools.yaml").read_text()) if d]
    kwok_pools = [d for d in docs if d["metadata"]["name"] != REAL_NODE_POOL]
    kube_cluster.kubectl("delete", "servingpool", REAL_NODE_POOL, "--ignore-not-found")
    kube_cluster.apply(yaml.safe_dump_all(kwok_pools))
    nodes = kube_cluster.get_json("nodes", "-l", "wattserve.dev/pool")["items"]
    if not nodes:
        pytest.skip("the cluster has no nodes labelled wattserve.dev/pool (not the dev cluster)")
    return kube_cluster


@pytest.fixture(name="operator")
def operator_fixture(wattserve_api: Cluster, namespace: str,
             tmp_path: Path) -> Iterator[Operator]:
    op = Operator(wattserve_api, namespace, tmp_path)
    op.start()
    try:
        yield op
    finally:
        op.stop()
        if os.environ.get("WATTSERVE_SHOW_OPERATOR_LOG"):
            sys.stderr.write(op.log())


def md_manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(yaml.safe_load(SMOLLM2.read_text()))
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"].update(copy.deepcopy(spec))
    return doc


def get_md(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(cluster.get_json("modeldeployment", name, "-n", namespace))


def condition(md: dict[str, Any], cond_type: str) -> dict[str, Any]:
    for cond in (md.get("status") or {}).get("conditions") or ():
        if cond.get("type") == cond_type:
            return dict(cond)
    return {}


def wait_condition(cluster: Cluster, namespace: str, name: str, cond_type: str,
                   status: str, reason: str | None = None,
                   timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        md = get_md(cluster, namespace, name)
        cond = condition(md, cond_type)
        ok = cond.get("status") == status and (reason is None or cond.get("reason") == reason)
        return md if ok else None

    return dict(wait_for(check, timeout=timeout,
                         what=f"{cond_type}={status} {reason or ''} on {namespace}/{name}"))


def events_for(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items = cluster.get_json("events", "-n", namespace,
                             "--field-selector", f"involvedObject.name={name},"
                             "involvedObject.kind=ModelDeployment")["items"]
    return list(items)


def pods_of(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(cluster.get_json("pods", "-n", namespace, "-l",
                                 f"wattserve.dev/model-deployment={name}")["items"])


def node_pool(cluster: Cluster, node: str) -> str:
    labels = cluster.get_json("node", node)["metadata"]["labels"]
    return str(labels.get("wattserve.dev/pool"))


def settle(seconds: float) -> None:
    time.sleep(seconds)
