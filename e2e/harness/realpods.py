"""The full stack on the dev cluster's real node (issue 11, item 4): what the e2e suite serves
and scales on.

* the Helm chart installed for real; the operator is the chart's pod (its image, its
  ServiceAccount and RBAC) on the real node;
* serving pods are the ones the operator's Deployments make, running on the real node
  (containerd + runc), reached through their Service's ClusterIP (kube-proxy on the host);
* a real Prometheus on the host at the node address ``cni.NODE_IP`` (so the operator pod can
  query it), discovering the serving pods through Kubernetes service discovery with the
  relabelling of the chart's own PodMonitor (e2e/harness/podmonitor.py). Debian's Prometheus
  has no Kubernetes discovery, so this one is built from e2e/prometheus/go.mod
  (scripts/setup.d/45-prometheus.sh).

Nothing here stands in for a part: no local serving process, no kwok pod on the serving path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from wattserve.devcluster import containerd, realnode
from wattserve.devcluster.cni import NODE_IP
from wattserve.devcluster.state import ClusterState

from e2e.harness.podmonitor import scrape_configs
from e2e.harness.prometheus import LocalPrometheus, free_port
from e2e.harness.stack import (
    CHART,
    POOL_VALUES,
    RELEASE,
    RELEASE_NAMESPACE,
    Kube,
    adopt_existing_pools,
    service_account_kubeconfig,
    wait_until,
)

RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
# The operator's pods only (the activator's, when enabled, share app.kubernetes.io/name).
OPERATOR_PODS = "app.kubernetes.io/name=wattserve,app.kubernetes.io/component=operator"
SCRAPE_INTERVAL = "1s"


def prometheus_binary() -> Path:
    """Where scripts/setup.d/45-prometheus.sh puts Prometheus with Kubernetes discovery."""
    from wattserve.devcluster.components import cache_dir

    return cache_dir() / "bin" / "prometheus-k8s-sd" / "prometheus"


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def restarts(pod: dict[str, Any]) -> int:
    return sum(int(cs.get("restartCount", 0))
               for cs in pod.get("status", {}).get("containerStatuses", []))


@dataclass
class OperatorPod:
    """The chart's operator pod; ``kill`` SIGKILLs its container through the node's
    containerd (a crash: the kubelet restarts it, as it would after an OOM kill)."""

    kube: Kube
    node: containerd.Paths

    def pods(self) -> list[dict[str, Any]]:
        return list(self.kube.get("pods", "-n", RELEASE_NAMESPACE, "-l", OPERATOR_PODS)["items"])

    def ready_pod(self, timeout: float = 120) -> dict[str, Any]:
        pods = wait_until(lambda: [p for p in self.pods() if pod_ready(p)], timeout,
                          "the operator pod Ready")
        return dict(pods[0])

    def kill(self) -> int:
        """SIGKILL the operator container; returns the pod's restart count before."""
        pod = self.ready_pod()
        status = pod["status"]["containerStatuses"][0]
        cid = str(status["containerID"]).split("://", 1)[1]
        res = containerd.ctr(self.node, "tasks", "kill", "--signal", "SIGKILL", cid)
        if res.returncode:
            raise RuntimeError(f"ctr tasks kill {cid}: {res.stderr.strip()}")
        return restarts(pod)

    def wait_restarted(self, before: int, timeout: float = 180) -> None:
        wait_until(lambda: [p for p in self.pods() if pod_ready(p) and restarts(p) > before],
                   timeout, "the operator container restarted and Ready")


def node_paths(state_dir: Path) -> containerd.Paths:
    st = ClusterState.load(state_dir)
    if st is None or not st.real_node:
        raise RuntimeError(f"the dev cluster in {state_dir} has no real node")
    dirs = realnode.dirs_for(st)
    return containerd.Paths(dirs.containerd_root, dirs.containerd_state, dirs.conf,
                            dirs.cni_conf)


@dataclass
class RealPodStack:
    kube: Kube
    workdir: Path
    namespace: str  # where the example ModelDeployments go (restricted PSS)
    state_dir: Path  # the dev cluster's state (its real node's containerd)
    autoscale_interval: float = 3.0
    prometheus: LocalPrometheus | None = None
    operator: OperatorPod | None = None
    sa_kubeconfig: Path | None = None

    # -- chart --------------------------------------------------------------------------
    def restricted_namespace(self, name: str) -> None:
        self.kube.kubectl("create", "namespace", name, check=False)
        self.kube.kubectl("label", "--overwrite", "namespace", name, RESTRICTED)

    def install_chart(self) -> None:
        """Prometheus first (the chart points the operator at it), then ``helm install``."""
        for ns in (RELEASE_NAMESPACE, self.namespace):
            self.restricted_namespace(ns)
        if self.prometheus is None:
            self.start_prometheus()
        assert self.prometheus is not None
        if self.kube.kubectl("get", "crd", "servingpools.wattserve.dev",
                             check=False).returncode == 0:
            adopt_existing_pools(self.kube)
        self.kube.helm(
            "upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE,
            "-f", str(POOL_VALUES),
            "--set", f"prometheus.url={self.prometheus.url}",
            "--set", f"autoscaler.intervalSeconds={self.autoscale_interval:g}",
            # The real node has 2 CPUs: two 1-CPU serving replicas fit only if the operator
            # requests none (it still runs, Burstable, within its 500m limit).
            "--set-string", "operator.resources.requests.cpu=0",
            "--wait", "--timeout", "240s", timeout=300)
        self.kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/modeldeployments.wattserve.dev", "crd/servingpools.wattserve.dev")
        self.operator = OperatorPod(self.kube, node_paths(self.state_dir))
        self.operator.ready_pod()
        self.sa_kubeconfig = service_account_kubeconfig(self.kube,
                                                        self.workdir / "operator.kubeconfig")

    def uninstall_chart(self) -> None:
        self.kube.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait",
                       "--timeout", "120s", check=False, timeout=180)

    # -- prometheus ---------------------------------------------------------------------
    def pod_monitor(self) -> dict[str, Any]:
        """The chart's PodMonitor, rendered with a 1 s interval (the suite's time scale)."""
        out = self.kube.helm(
            "template", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE,
            "--show-only", "templates/podmonitor.yaml", "--set", "podMonitor.enabled=true",
            # as on a cluster with the Prometheus Operator (the chart renders monitors there)
            "--api-versions", "monitoring.coreos.com/v1",
            "--set", f"podMonitor.interval={SCRAPE_INTERVAL}",
            "--set", f"podMonitor.scrapeTimeout={SCRAPE_INTERVAL}").stdout
        doc: dict[str, Any] = yaml.safe_load(out)
        return doc

    def start_prometheus(self, port: int = 0) -> LocalPrometheus:
        prom = LocalPrometheus(self.workdir / "prometheus", scrape_interval=1.0, host=NODE_IP,
                               binary=str(prometheus_binary()))
        prom.scrape_configs = scrape_configs(self.pod_monitor(), str(self.kube.kubeconfig))
        prom.start(port=port or free_port())
        self.prometheus = prom
        return prom

    def stop_prometheus(self) -> int:
        """Stop Prometheus; returns its port so it can come back at the same address."""
        assert self.prometheus is not None
        port = self.prometheus.port
        self.prometheus.stop()
        return port

    # -- serving ------------------------------------------------------------------------
    def service_url(self, md_name: str) -> str:
        """``http://<ClusterIP>:<port>`` of a ModelDeployment's Service."""
        svc = wait_until(
            lambda: self.kube.get("services", "-n", self.namespace, "-l",
                                  f"wattserve.dev/model-deployment={md_name}")["items"],
            120, f"the Service of {md_name}")[0]
        return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"

    # -- teardown -----------------------------------------------------------------------
    def stop_all(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
