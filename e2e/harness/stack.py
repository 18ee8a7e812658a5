"""The full wattserve stack on the local control plane, as processes this harness owns.

Used by `make demo` (the e2e suite serves from real pods: e2e/harness/realpods.py):

* the Helm chart installed for real (CRDs, RBAC, ServingPools), operator Deployment at 0;
* the operator as a local process **authenticated as the chart's ServiceAccount** (a token
  from the TokenRequest API), so the chart's RBAC is exercised for real;
* the real SmolLM2 serving app as a local process labelled as a ModelDeployment (it stands
  in for the CPU pod, which kwok cannot run);
* a real Prometheus scraping the serving app and the operator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from wattserve.devcluster.processes import free_port, poll

from e2e.harness.prometheus import LocalPrometheus, Target

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "wattserve"
POOL_VALUES = CHART / "examples" / "pools-values.yaml"
RELEASE = "wattserve"
RELEASE_NAMESPACE = "wattserve-system"


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; raise with ``what`` at the deadline."""
    return poll(check, timeout, what, interval)


@dataclass
class Kube:
    """kubectl and helm against one kubeconfig."""

    kubeconfig: Path
    bin_dir: Path

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        exe = self.bin_dir / tool
        proc = subprocess.run([str(exe if exe.exists() else tool), *args], input=input,
                              capture_output=True, text=True, env=self.env(), timeout=timeout,
                              check=False)
        if check and proc.returncode:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kw)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def helm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, **kw)


def service_account_kubeconfig(kube: Kube, out: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest API)."""
    sa = kube.get("serviceaccount", "-n", RELEASE_NAMESPACE, "-l",
                  f"app.kubernetes.io/instance={RELEASE}")["items"][0]["metadata"]["name"]
    token = kube.kubectl("create", "token", sa, "-n", RELEASE_NAMESPACE,
                         "--duration=2h").stdout.strip()
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": cluster["name"], "user": sa}}],
        "current-context": sa,
    }
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def adopt_existing_pools(kube: Kube) -> None:
    """ServingPools of the chart's names made earlier by hand (other tests of the same
    session, or a user) are handed to the Helm release instead of blocking the install."""
    names = [p["name"] for p in yaml.safe_load(POOL_VALUES.read_text())["servingPools"]]
    existing = {i["metadata"]["name"] for i in kube.get("servingpools")["items"]}
    for name in sorted(existing & set(names)):
        kube.kubectl("label", "--overwrite", "servingpool", name,
                     "app.kubernetes.io/managed-by=Helm")
        kube.kubectl("annotate", "--overwrite", "servingpool", name,
                     f"meta.helm.sh/release-name={RELEASE}",
                     f"meta.helm.sh/release-namespace={RELEASE_NAMESPACE}")


@dataclass
class Process:
    """A child process with its log file; ``kill`` is SIGKILL, ``stop`` is SIGTERM."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        handle = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=handle,
                                     stderr=subprocess.STDOUT, cwd=str(REPO),
                                     start_new_session=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None


@dataclass
class Stack:
    kube: Kube
    workdir: Path
    namespace: str  # where the example ModelDeployments go
    autoscale_interval: float = 3.0
    serving_model_deployment: str = "smollm2-135m"
    prometheus: LocalPrometheus | None = None
    operator: Process | None = None
    serving: Process | None = None
    serving_port: int = 0
    operator_ports: tuple[int, int] = (0, 0)
    sa_kubeconfig: Path | None = None
    notes: list[str] = field(default_factory=list)

    # -- chart --------------------------------------------------------------------------
    def adopt_existing_pools(self) -> None:
        adopt_existing_pools(self.kube)

    def install_chart(self) -> None:
        crd = self.kube.kubectl("get", "crd", "servingpools.wattserve.dev", check=False)
        if crd.returncode == 0:
            self.adopt_existing_pools()
        self.kube.helm("upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE,
                       "--create-namespace", "-f", str(POOL_VALUES),
                       "--set", "operator.replicas=0", "--wait", "--timeout", "120s",
                       timeout=180)
        self.kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/modeldeployments.wattserve.dev", "crd/servingpools.wattserve.dev")
        self.kube.kubectl("create", "namespace", self.namespace, check=False)
        self.sa_kubeconfig = service_account_kubeconfig(self.kube,
                                                        self.workdir / "operator.kubeconfig")

    def uninstall_chart(self) -> None:
        self.kube.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait",
                       "--timeout", "120s", check=False, timeout=180)

    # -- prometheus ---------------------------------------------------------------------
    def start_prometheus(self, port: int = 0) -> LocalPrometheus:
        prom = LocalPrometheus(self.workdir / "prometheus", scrape_interval=1.0)
        prom.targets = self._targets()
        prom.start(port=port)
        self.prometheus = prom
        return prom

    def _targets(self) -> list[Target]:
        targets = []
        if self.serving_port:
            targets.append(Target("wattserve-serving", f"127.0.0.1:{self.serving_port}"))
        if self.operator_ports[1]:
            targets.append(Target("wattserve-operator", f"127.0.0.1:{self.operator_ports[1]}"))
        return targets

    def stop_prometheus(self) -> int:
        """Stop Prometheus; returns its port so it can come back at the same address."""
        assert self.prometheus is not None
        port = self.prometheus.port
        self.prometheus.stop()
        return port

    # -- serving ------------------------------------------------------------------------
    def start_serving(self, threads: int = 1, max_queue: int = 16) -> None:
        from wattserve import contract

        self.serving_port = free_port()
        env = dict(os.environ) | {
            contract.ENV_MODEL_DEPLOYMENT: self.serving_model_deployment,
            contract.ENV_NAMESPACE: self.namespace,
            contract.ENV_POOL: "cpu-general",
            contract.ENV_MODEL_NAME: "smollm2-135m-instruct",
            contract.ENV_NODE_IDLE_WATTS: "30", contract.ENV_NODE_MAX_WATTS: "90",
            contract.ENV_NODE_CPUS: "16", "PYTHONUNBUFFERED": "1",
        }
        self.serving = Process("serving", [
            sys.executable, "-m", "wattserve_serving.cli", "--model", "smollm2",
            "--engine", "llamacpp", "--server", "uvicorn", "--host", "127.0.0.1",
            "--port", str(self.serving_port), "--threads", str(threads),
            "--max-queue", str(max_queue)], env, self.workdir / "serving.log").start()
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.serving_port}/health"), 120,
                   "the SmolLM2 serving app to load the model")
        if self.prometheus is not None:
            self.prometheus.set_targets(self._targets())

    @property
    def serving_url(self) -> str:
        return f"http://127.0.0.1:{self.serving_port}"

    # -- operator -----------------------------------------------------------------------
    def start_operator(self) -> Process:
        assert self.sa_kubeconfig is not None, "install_chart first"
        if self.operator_ports == (0, 0):
            self.operator_ports = (free_port(), free_port())
        health, metrics = self.operator_ports
        env = self.kube.env(self.sa_kubeconfig) | {
            "PYTHONUNBUFFERED": "1",
            "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS": str(self.autoscale_interval),
            "WATTSERVE_ENERGY_SOURCE": "wattserve",
        }
        if self.prometheus is not None:
            env["WATTSERVE_PROMETHEUS_URL"] = self.prometheus.url
        self.operator = Process("operator", [
            sys.executable, "-m", "wattserve.controller", "--all-namespaces",
            "--health-port", str(health), "--metrics-port", str(metrics),
            "--resync-seconds", "10"], env, self.workdir / "operator.log").start()
        wait_until(lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), 60,
                   "the operator's health endpoint")
        if self.prometheus is not None:
            self.prometheus.set_targets(self._targets())
        return self.operator

    # -- teardown -----------------------------------------------------------------------
    def stop_all(self) -> None:
        for proc in (self.operator, self.serving):
            if proc is not None:
                proc.stop()
        if self.prometheus is not None:
            self.prometheus.stop()


def md_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("md", name, "-n", namespace).get("status", {})
    return status


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in status.get("conditions", []):
        if cond.get("type") == kind:
            return dict(cond)
    return {}
