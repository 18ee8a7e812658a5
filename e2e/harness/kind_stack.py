"""The same stack interface as :class:`e2e.harness.stack.Stack`, on a kind cluster made by
e2e/kind/up.sh: the chart (operator in-cluster), Prometheus in-cluster and SmolLM2 served
by the real CPU pod. Nothing here starts local servers except `kubectl port-forward`.

It cannot run on the development machine (no Docker engine); it is exercised by
e2e/kind/run.sh.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from wattserve.devcluster.processes import free_port

from e2e.harness.stack import (
    RELEASE,
    RELEASE_NAMESPACE,
    Kube,
    http_ok,
    service_account_kubeconfig,
    wait_until,
)

PROM_NAMESPACE = os.environ.get("WATTSERVE_E2E_PROMETHEUS_NAMESPACE", "monitoring")
PROM_SERVICE = os.environ.get("WATTSERVE_E2E_PROMETHEUS_SERVICE", "prometheus")


@dataclass
class InClusterOperator:
    """The chart's operator Deployment; ``kill`` deletes its pod at once."""

    kube: Kube

    def _deployment(self) -> str:
        items = self.kube.get("deployments", "-n", RELEASE_NAMESPACE, "-l",
                              f"app.kubernetes.io/instance={RELEASE}")["items"]
        return str(items[0]["metadata"]["name"])

    def wait_ready(self) -> None:
        self.kube.kubectl("rollout", "status", f"deployment/{self._deployment()}", "-n",
                          RELEASE_NAMESPACE, "--timeout=180s", timeout=200)

    def kill(self) -> None:
        self.kube.kubectl("delete", "pod", "-n", RELEASE_NAMESPACE, "-l",
                          f"app.kubernetes.io/instance={RELEASE}", "--grace-period=0",
                          "--force", check=False)

    def stop(self) -> None:
        self.kube.kubectl("scale", f"deployment/{self._deployment()}", "-n",
                          RELEASE_NAMESPACE, "--replicas=0")


@dataclass
class _PrometheusHandle:
    port: int = 0


@dataclass
class KindStack:
    kube: Kube
    workdir: Path
    namespace: str
    autoscale_interval: float = 30.0  # the chart's default interval
    serving_model_deployment: str = "smollm2-135m"
    provider: str = "kind"
    operator: InClusterOperator | None = None
    prometheus: _PrometheusHandle | None = None
    sa_kubeconfig: Path | None = None
    forwards: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _serving_url: str = ""

    def install_chart(self) -> None:
        """up.sh installed the chart; check it and make the models' namespace."""
        self.kube.helm("status", RELEASE, "-n", RELEASE_NAMESPACE)
        self.kube.kubectl("create", "namespace", self.namespace, check=False)
        self.sa_kubeconfig = service_account_kubeconfig(self.kube,
                                                        self.workdir / "operator.kubeconfig")

    def uninstall_chart(self) -> None:
        self.kube.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait",
                       "--timeout", "180s", check=False, timeout=240)

    def start_prometheus(self, port: int = 0) -> _PrometheusHandle:
        self.kube.kubectl("scale", f"deployment/{PROM_SERVICE}", "-n", PROM_NAMESPACE,
                          "--replicas=1")
        self.kube.kubectl("rollout", "status", f"deployment/{PROM_SERVICE}", "-n",
                          PROM_NAMESPACE, "--timeout=180s", timeout=200)
        self.prometheus = _PrometheusHandle()
        return self.prometheus

    def stop_prometheus(self) -> int:
        self.kube.kubectl("scale", f"deployment/{PROM_SERVICE}", "-n", PROM_NAMESPACE,
                          "--replicas=0")
        wait_until(lambda: not self.kube.get("pods", "-n", PROM_NAMESPACE)["items"], 120,
                   "Prometheus pods gone")
        return 0

    def start_serving(self, threads: int = 1, max_queue: int = 16) -> None:
        """SmolLM2 is served by its pod once the ModelDeployment exists (serving_url)."""

    @property
    def serving_url(self) -> str:
        if not self._serving_url:
            service = wait_until(
                lambda: self.kube.get("services", "-n", self.namespace, "-l",
                                      "wattserve.dev/model-deployment="
                                      f"{self.serving_model_deployment}")["items"],
                180, "the SmolLM2 Service")[0]["metadata"]["name"]
            port = free_port()
            forward = subprocess.Popen(
                ["kubectl", "port-forward", "-n", self.namespace, f"svc/{service}",
                 f"{port}:8000"], env=self.kube.env(), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
            self.forwards.append(forward)
            self._serving_url = f"http://127.0.0.1:{port}"
            wait_until(lambda: http_ok(self._serving_url + "/health"), 300,
                       "SmolLM2 serving in its pod")
        return self._serving_url

    def start_operator(self) -> InClusterOperator:
        self.operator = self.operator or InClusterOperator(self.kube)
        self.operator.wait_ready()
        return self.operator

    def stop_all(self) -> None:
        for forward in self.forwards:
            forward.terminate()
        self.forwards.clear()
