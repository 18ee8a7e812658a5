"""Real pods on the dev cluster's real node, for `make demo` and benchmarks/realpods_scale.py.

The path is the one a user takes (issue 11): `wattserve dev-cluster up` with the real node,
`helm install` the chart (the operator as the chart's pod), `kubectl apply` SmolLM2 from its
model image, load through the Service's ClusterIP, and a real Prometheus (Debian's binary on
the host, listening on the real node's address so the operator pod reaches it) that finds the
serving pods by Kubernetes service discovery with the chart PodMonitor's selection and
relabelling.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from wattserve import contract
from wattserve.devcluster.cni import NODE_IP
from wattserve.devcluster.components import binary_paths
from wattserve.devcluster.state import ClusterState
from wattserve.render.meta import selector_labels

from e2e.clusterload import (
    LONG_PROMPT,
    MODEL_NAME,
    Load,
    Window,
    percentile,
    run_closed,
    run_load,
)
from e2e.harness.prometheus import LocalPrometheus, _duration
from e2e.harness.stack import Kube, wait_until

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "wattserve"
POOL_VALUES = CHART / "examples" / "pools-values.yaml"
SMOLLM2 = REPO / "examples" / "models" / "smollm2-135m-oci.yaml"
RELEASE, RELEASE_NS = "wattserve", "wattserve-system"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
MD_LABEL = "wattserve.dev/model-deployment"  # what the chart's PodMonitor selects on
__all__ = ["LONG_PROMPT", "MODEL_NAME", "Load", "Window", "percentile", "run_closed", "run_load"]


def cli(state: Path, *args: str, capture: bool = False) -> str:
    proc = subprocess.run([sys.executable, "-m", "wattserve.cli.main", "dev-cluster",
                           "--state-dir", str(state), *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return (proc.stdout or "").strip()


def tools_dir(state: Path) -> Path:
    """kubectl and helm (built by `dev-cluster build`) linked into one directory."""
    bins = binary_paths()
    out = state / "bin"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("kubectl", "helm"):
        link = out / name
        if not link.exists():
            link.symlink_to(bins[name])
    return out


def cluster_up(state: Path, real_node: bool = True) -> tuple[Kube, bool]:
    """`dev-cluster up`; the kubectl/helm handle and whether the real node runs."""
    cli(state / "cluster", "up", *(() if real_node else ("--no-real-node",)))
    kubeconfig = Path(cli(state / "cluster", "kubeconfig", capture=True))
    st = ClusterState.load(state / "cluster")
    return Kube(kubeconfig, tools_dir(state)), bool(st is not None and st.real_node)


def cluster_down(state: Path, tries: int = 3) -> bool:
    """`dev-cluster down`, again when it fails (the real node is shared: never leave it up)."""
    if not (state / "cluster").exists():
        return True
    for _ in range(tries):
        if subprocess.run([sys.executable, "-m", "wattserve.cli.main", "dev-cluster",
                           "--state-dir", str(state / "cluster"), "down"],
                          check=False).returncode == 0:
            return True
        time.sleep(2)
    return False


def restricted_namespace(kube: Kube, name: str) -> None:
    kube.kubectl("create", "namespace", name, check=False)
    kube.kubectl("label", "--overwrite", "namespace", name, RESTRICTED)


def install_chart(kube: Kube, workdir: Path, values: dict[str, Any]) -> float:
    """`helm upgrade --install` with the example pools and ``values``; seconds to Ready."""
    restricted_namespace(kube, RELEASE_NS)
    extra = workdir / "values.yaml"
    extra.write_text(yaml.safe_dump(values))
    started = time.monotonic()
    kube.helm("upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NS, "-f",
              str(POOL_VALUES), "-f", str(extra), "--wait", "--timeout", "240s", timeout=300)
    return time.monotonic() - started


def chart_values(prometheus_url: str, interval_s: int = 2) -> dict[str, Any]:
    """The operator reads the host Prometheus; short windows so the loop reacts in seconds."""
    return {"prometheus": {"url": prometheus_url},
            "autoscaler": {"intervalSeconds": interval_s},
            "operator": {"extraArgs": ["--promql-window", "10s", "--scrape-interval", "1"]}}


def smollm2_doc(name: str = "smollm2-135m", **scaling: int) -> dict[str, Any]:
    """examples/models/smollm2-135m-oci.yaml, renamed, with ``scaling`` overrides."""
    doc: dict[str, Any] = copy.deepcopy(yaml.safe_load(SMOLLM2.read_text()))
    doc["metadata"]["name"] = name
    doc["spec"]["scaling"].update(scaling)
    return doc


def apply(kube: Kube, namespace: str, doc: dict[str, Any]) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def pods(kube: Kube, namespace: str, md: str) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in selector_labels(md).items())
    items: list[dict[str, Any]] = kube.get("pods", "-n", namespace, "-l", selector)["items"]
    return items


def is_ready(pod: dict[str, Any]) -> bool:
    return pod.get("metadata", {}).get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", []))


def ready_pods(kube: Kube, namespace: str, md: str) -> list[dict[str, Any]]:
    return [p for p in pods(kube, namespace, md) if is_ready(p)]


def wait_ready(kube: Kube, namespace: str, md: str, count: int, timeout: float) -> float:
    """Seconds until ``count`` serving pods are Ready (and no more pods than that exist)."""
    started = time.monotonic()
    wait_until(lambda: len(ready_pods(kube, namespace, md)) >= count, timeout,
               f"{count} Ready serving pod(s) of {md}", interval=0.5)
    return time.monotonic() - started


def service_url(kube: Kube, namespace: str, name: str) -> str:
    svc = kube.get("service", name, "-n", namespace)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def k8s_sd_prometheus() -> str | None:
    """A Prometheus build with Kubernetes service discovery (Debian's has none): the one
    scripts/setup.d/45-prometheus.sh builds, or $WATTSERVE_PROMETHEUS."""
    cache = Path(os.environ.get("WATTSERVE_CACHE", Path.home() / ".cache" / "wattserve"))
    for candidate in (os.environ.get("WATTSERVE_PROMETHEUS", ""),
                      str(cache / "bin" / "prometheus-k8s-sd" / "prometheus")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def podmonitor_targets(pod_list: list[dict[str, Any]], port_name: str = "http"
                       ) -> list[dict[str, Any]]:
    """What Prometheus' Kubernetes pod discovery + the PodMonitor's relabelling keep, as
    file_sd target groups: pods with the model-deployment label that are not Pending or done,
    their container port named ``port_name``; labels namespace, pod, container and node."""
    groups = []
    for pod in pod_list:
        meta, status = pod.get("metadata", {}), pod.get("status", {})
        if MD_LABEL not in meta.get("labels", {}) or not status.get("podIP"):
            continue
        if status.get("phase") in ("Pending", "Succeeded", "Failed"):
            continue
        for container in pod.get("spec", {}).get("containers", []):
            for port in container.get("ports", []):
                if port.get("name") != port_name:
                    continue
                groups.append({"targets": [f"{status['podIP']}:{port['containerPort']}"],
                               "labels": {"namespace": meta.get("namespace", ""),
                                          "pod": meta.get("name", ""),
                                          "container": container.get("name", ""),
                                          "node": pod.get("spec", {}).get("nodeName", "")}})
    return groups


class KubePrometheus(LocalPrometheus):
    """LocalPrometheus whose one job finds serving pods as the chart's PodMonitor does: pods
    with the wattserve.dev/model-deployment label, in every namespace, their port named
    ``http`` (podMonitor.portName), /metrics, honor_labels, the node name relabelled into
    ``node`` (plus the namespace/pod/container labels the Prometheus Operator adds).

    With a Prometheus that has Kubernetes service discovery (k8s_sd_prometheus()) that is
    its own `kubernetes_sd_configs` + relabelling. Debian's Prometheus has none; then a
    STAND-IN does the discovery: a thread lists the pods through the Kubernetes API every
    second and writes the same targets for Prometheus' file discovery (podmonitor_targets).
    """

    def __init__(self, workdir: Path, kube: Kube, scrape_interval: float = 1.0,
                 host: str = NODE_IP, port_name: str = "http") -> None:
        binary = k8s_sd_prometheus()
        super().__init__(workdir, scrape_interval=scrape_interval, host=host, binary=binary)
        self.kube = kube
        self.port_name = port_name
        self.kubernetes_sd = binary is not None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def discovery(self) -> str:
        return ("Prometheus' Kubernetes service discovery" if self.kubernetes_sd else
                "a stand-in for Kubernetes service discovery (Debian's Prometheus has none; "
                "scripts/setup.d/45-prometheus.sh builds one)")

    def _write_config(self) -> Path:
        interval = _duration(self.scrape_interval)
        job: dict[str, Any] = {
            "job_name": "wattserve-serving",
            "honor_labels": True,
            "metrics_path": "/metrics",
            "scrape_interval": interval,
            "scrape_timeout": _duration(max(0.5, self.scrape_interval * 0.8)),
        }
        if self.kubernetes_sd:
            job["kubernetes_sd_configs"] = [{"role": "pod",
                                             "kubeconfig_file": str(self.kube.kubeconfig)}]
            job["relabel_configs"] = [
                {"source_labels": ["__meta_kubernetes_pod_labelpresent_"
                                   + _label_name(MD_LABEL)],
                 "regex": "true", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"],
                 "regex": self.port_name, "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_phase"],
                 "regex": "Pending|Succeeded|Failed", "action": "drop"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"],
                 "target_label": "container"},
                # the chart's one relabeling:
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            ]
        else:
            self._targets_file().write_text("[]")
            job["file_sd_configs"] = [{"files": [str(self._targets_file())],
                                       "refresh_interval": "1s"}]
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
                  "scrape_configs": [job]}
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _targets_file(self) -> Path:
        return self.workdir / "serving-pods.json"

    def start(self, timeout: float = 30.0, port: int = 0) -> KubePrometheus:
        super().start(timeout, port)
        if not self.kubernetes_sd:
            self._thread = threading.Thread(target=self._discover, daemon=True)
            self._thread.start()
        return self

    def _discover(self) -> None:
        last = ""
        while not self._stop.wait(1.0):
            try:
                items = self.kube.get("pods", "-A", "-l", MD_LABEL)["items"]
            except (RuntimeError, ValueError, subprocess.TimeoutExpired):
                continue
            text = json.dumps(podmonitor_targets(items, self.port_name), sort_keys=True)
            if text != last:
                tmp = self._targets_file().with_suffix(".tmp")
                tmp.write_text(text)
                tmp.replace(self._targets_file())  # Prometheus never reads half a file
                last = text

    def stop(self) -> None:
        self._stop.set()
        super().stop()


def _label_name(label: str) -> str:
    """A Kubernetes label as Prometheus' service discovery spells it in meta labels."""
    return "".join(ch if ch.isalnum() else "_" for ch in label)


def pods_cpu_s() -> float | None:
    """CPU seconds used by every pod on the real node (the kubelet's kubepods cgroup)."""
    for path in ("/sys/fs/cgroup/cpuacct/kubepods/cpuacct.usage",
                 "/sys/fs/cgroup/cpu/kubepods/cpuacct.usage",
                 "/sys/fs/cgroup/cpu,cpuacct/kubepods/cpuacct.usage"):
        try:
            return int(Path(path).read_text()) / 1e9
        except (OSError, ValueError):
            continue
    return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / hz, sum(fields) / hz


def served_requests(pod_ip: str) -> float:
    """Requests the serving pod at ``pod_ip`` answered with 200 (its own /metrics; 0 when it
    does not answer)."""
    url = f"http://{pod_ip}:{contract.SERVING_PORT}/metrics"
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(contract.REQUESTS_TOTAL + "{") and 'status="200"' in line)
