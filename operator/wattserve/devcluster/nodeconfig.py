"""Configuration files and command lines of the real node's kubelet, kube-proxy and CoreDNS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wattserve.devcluster.cni import NODE_IP, POD_SUBNET

POOL_NAME = "cpu-local"
POOL_LABEL = "wattserve.dev/pool"
CLUSTER_DOMAIN = "cluster.local"
KUBELET_PORT = 10250


@dataclass(frozen=True)
class NodeDirs:
    """Everything the node writes, below ``<state>/node`` (and the runtime dir)."""

    root: Path
    run: Path
    # Images and snapshots: kept between clusters (in the cache), so that the images a node
    # needs are imported once, not on every `up`.
    containerd_root: Path

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni"

    @property
    def ipam(self) -> Path:
        return self.root / "ipam"

    @property
    def containerd_state(self) -> Path:
        return self.run / "containerd"


def kubelet_config(
    dirs: NodeDirs, pki_dir: Path, socket: Path, healthz_port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(pki_dir / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki_dir / "kubelet-serving.key"),
        # No anonymous access; the API server is authenticated by its client certificate and
        # every request is authorised by a SubjectAccessReview.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki_dir / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "podLogsDir": str(dirs.pod_logs),
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "maxPods": 40,
        "serializeImagePulls": False,
        # Images are imported, never pulled: keep them (GC would delete them for good).
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared dev VM: evict only when memory is truly short, never for disk.
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "registerWithTaints": [],
        "systemReserved": {"cpu": "0", "memory": "256Mi"},
        "nodeStatusReportFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "cpuCFSQuota": True,
        "topologyManagerPolicy": "none",
        "logging": {"verbosity": 1},
    }


def write_kubelet_config(path: Path, cfg: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def kubelet_cmd(
    binary: Path, dirs: NodeDirs, config: Path, kubeconfig: Path, node_name: str
) -> list[str]:
    labels = f"{POOL_LABEL}={POOL_NAME},node.kubernetes.io/instance-type=local-vm"
    return [
        str(binary),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={dirs.kubelet_root}",
        f"--cert-dir={dirs.root / 'kubelet-pki'}",
        f"--hostname-override={node_name}",
        f"--node-ip={NODE_IP}",
        f"--node-labels={labels}",
    ]


def kube_proxy_config(kubeconfig: Path, node_name: str, healthz: int, metrics: int) -> str:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": node_name,
        "bindAddress": NODE_IP,
        "clusterCIDR": POD_SUBNET,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        # Leave the host's conntrack sysctls alone (0 = do not change).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # Masquerade every Service connection: replies always come back through the host,
        # so pod -> Service -> pod on the same bridge works without relying on br_netfilter.
        "iptables": {"masqueradeAll": True, "localhostNodePorts": False},
        "nodePortAddresses": [f"{NODE_IP}/32"],
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def kube_proxy_cmd(binary: Path, config: Path) -> list[str]:
    return [str(binary), f"--config={config}", "--v=1"]


def corefile(kubeconfig: Path, health_port: int, ready_port: int) -> str:
    return f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 30
}}
"""


def coredns_cmd(binary: Path, corefile_path: Path) -> list[str]:
    return [str(binary), "-conf", str(corefile_path)]


COREDNS_USER = "wattserve:coredns"
COREDNS_RBAC: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": COREDNS_USER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": COREDNS_USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": COREDNS_USER,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}
            ],
        },
    ),
)
