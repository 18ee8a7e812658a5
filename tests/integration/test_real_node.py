"""The real node of the session cluster runs real pods: containerd + runc + CNI, kubelet,
kube-proxy (Service ClusterIPs, from pods and from the host), CoreDNS (Service names) and an API
server that pods reach as ``kubernetes.default.svc``.  The last test stops the node and checks
that the host is restored, then starts it again.

Pods here run the busybox image built by the dev cluster (no registry), in a namespace that
enforces the restricted Pod Security Standard.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubeutil import Cluster, pods_ready, unique_name, wait_for
from wattserve.devcluster import cni, containerd, hoststate, processes, realnode
from wattserve.devcluster.containerd import BUSYBOX_IMAGE
from wattserve.devcluster.nodeconfig import POOL_LABEL, POOL_NAME
from wattserve.devcluster.state import ClusterState

pytestmark = pytest.mark.integration
SVC_FQDN = "kubernetes.default.svc.cluster.local"

RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _real_nodes(cluster: Cluster) -> list[dict[str, Any]]:
    nodes = cluster.get_json("nodes", "-l", f"{POOL_LABEL}={POOL_NAME}")["items"]
    return [n for n in nodes if n["metadata"]["labels"].get("type") != "kwok"]


@pytest.fixture(scope="module")
def real_node(kube_cluster: Cluster) -> dict[str, Any]:
    """The session cluster's real node; skips only where this machine cannot run one."""
    if kube_cluster.external:
        pytest.skip("external cluster: the dev cluster's real node is not there")
    why = realnode.host_reason()
    if why is not None:
        pytest.skip(f"this machine cannot run a real node: {why}")
    nodes = _real_nodes(kube_cluster)
    assert len(nodes) == 1, "the session dev cluster started no real node (see its log)"
    return nodes[0]


@pytest.fixture
def restricted_ns(kube_cluster: Cluster) -> Iterator[str]:
    name = unique_name("wsrn")
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl(
        "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"
    )
    wait_for(
        lambda: (
            kube_cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0
        ),
        timeout=30,
        what="default ServiceAccount",
    )
    try:
        yield name
    finally:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _pod(name: str, command: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "nodeSelector": {POOL_LABEL: POOL_NAME},
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": RESTRICTED,
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "200m", "memory": "32Mi"},
                    },
                }
            ],
        },
    }


def _web(cluster: Cluster, ns: str) -> str:
    """An httpd pod behind a ClusterIP Service ``web``; returns the ClusterIP."""
    cluster.apply(_pod("web", ["httpd", "-f", "-p", "8080", "-h", "/www"]), "-n", ns)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    cluster.apply(svc, "-n", ns)
    wait_for(lambda: pods_ready(cluster, ns, "app=web", 1), timeout=60, what="web pod Ready")
    return str(cluster.get_json("service", "web", "-n", ns)["spec"]["clusterIP"])


def _http_via_nc(cluster: Cluster, ns: str, pod: str, ip: str, port: int) -> str:
    script = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port}"
    return _exec(cluster, ns, pod, "sh", "-c", script).stdout


def _exec(cluster: Cluster, ns: str, pod: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("exec", "-n", ns, pod, "--", *argv, check=False)


def test_real_node_joins_as_a_cpu_pool_with_its_real_capacity(real_node: dict[str, Any]) -> None:
    labels = real_node["metadata"]["labels"]
    assert labels[POOL_LABEL] == POOL_NAME
    assert not real_node["spec"].get("taints"), "system workloads must fit without tolerations"
    addresses = {a["type"]: a["address"] for a in real_node["status"]["addresses"]}
    assert addresses["InternalIP"] == cni.NODE_IP
    info = real_node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    cpus = int(real_node["status"]["capacity"]["cpu"])
    assert cpus == os.cpu_count()


def test_pod_serves_through_cluster_ip_and_dns_from_pods_and_host(
    kube_cluster: Cluster, real_node: dict[str, Any], restricted_ns: str
) -> None:
    ns = restricted_ns
    ip = _web(kube_cluster, ns)
    client = _pod("client", ["sleep", "3600"])
    kube_cluster.apply(client, "-n", ns)
    wait_for(lambda: pods_ready(kube_cluster, ns, "app=client", 1), timeout=60, what="client")
    # From the host: kube-proxy's OUTPUT rules make the ClusterIP reachable here too.
    body = wait_for(
        lambda: urllib.request.urlopen(f"http://{ip}/", timeout=3).read().decode(),
        timeout=30,
        what=f"http://{ip}/ from the host",
    )
    assert "wattserve real node" in body
    # Debian's busybox is static glibc: its wget/nc cannot resolve names (NSS), so names are
    # resolved with nslookup (CoreDNS) and the request goes to the answer with nc.
    for name in (f"web.{ns}.svc.cluster.local", "web"):
        out = wait_for(
            lambda n=name: _exec(kube_cluster, ns, "client", "nslookup", n).stdout,
            timeout=30,
            what=f"DNS answer for {name}",
        )
        assert ip in out, out
    out = wait_for(
        lambda: _http_via_nc(kube_cluster, ns, "client", ip, 80),
        timeout=30,
        what=f"http://{ip}/ from another pod",
    )
    assert "wattserve real node" in out
    # exec/logs go API server -> kubelet with the API server's client certificate.
    logs = kube_cluster.kubectl("logs", "-n", ns, "web").returncode
    assert logs == 0


def test_pods_reach_the_api_server_as_kubernetes_default_svc(
    kube_cluster: Cluster, real_node: dict[str, Any], restricted_ns: str
) -> None:
    ns = restricted_ns
    kube_cluster.apply(_pod("api", ["sleep", "3600"]), "-n", ns)
    wait_for(lambda: pods_ready(kube_cluster, ns, "app=api", 1), timeout=60, what="api pod")
    slices = kube_cluster.get_json(
        "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes"
    )["items"]
    addrs = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
    assert addrs == {cni.NODE_IP}
    out = wait_for(
        lambda: _exec(kube_cluster, ns, "api", "nslookup", SVC_FQDN).stdout,
        timeout=30,
        what=f"DNS answer for {SVC_FQDN}",
    )
    assert "10.96.0.1" in out, out
    # busybox has no TLS client: a plain HTTP request to the HTTPS port gets the API server's
    # own answer, through the Service's ClusterIP (kube-proxy) to the advertised address.
    out = wait_for(
        lambda: _http_via_nc(kube_cluster, ns, "api", "10.96.0.1", 443),
        timeout=30,
        what="an answer from https://kubernetes.default.svc",
    )
    assert "Client sent an HTTP request to an HTTPS server" in out, out


def test_kubelet_refuses_anonymous_requests(real_node: dict[str, Any]) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"https://{cni.NODE_IP}:10250/pods", context=ctx, timeout=5)
    assert err.value.code == 401


def _session_state(kube_cluster: Cluster) -> ClusterState:
    st = ClusterState.load(Path(kube_cluster.extra["state_dir"]))
    assert st is not None and st.real_node
    return st


def _assert_restored(record: dict[str, Any], node_dir: Path) -> None:
    assert hoststate.differences(record["host"]) == []
    ctr_root = Path(record["containerd_root"])
    assert hoststate.mounts_under([node_dir, ctr_root, realnode.RUN_DIR]) == []
    for link in cni.links():
        assert not Path(f"/sys/class/net/{link}").exists(), link
    assert not realnode.RUN_DIR.exists()
    assert not containerd.shim_pids(
        containerd.Paths(ctr_root, realnode.RUN_DIR / "containerd", node_dir, node_dir)
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wattserve.cli.main", "dev-cluster", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_down_restores_the_host_and_the_node_starts_again(
    kube_cluster: Cluster, real_node: dict[str, Any], restricted_ns: str, tmp_path: Path
) -> None:
    """Runs last in this module. With a pod running: stop the session cluster's node and check
    the host; then a whole `wattserve dev-cluster up` / `down` of a second cluster with the
    node, and the host again; then the session's node starts again."""
    from wattserve.devcluster import control_plane

    _web(kube_cluster, restricted_ns)
    st = _session_state(kube_cluster)
    record = json.loads(realnode.HOST_RECORD.read_text())
    assert realnode.stop(st) == []
    _assert_restored(record, realnode.dirs_for(st).root)

    state = tmp_path / "second"
    try:
        up = _cli("--state-dir", str(state), "up", "--no-build", "--no-images")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "real node" in up.stdout and "Ready" in up.stdout, up.stdout
        second = json.loads(realnode.HOST_RECORD.read_text())
        assert second["owner"] == str(state)
        procs = [(r.pid, r.binary) for r in (ClusterState.load(state) or st).processes]
    finally:
        down = _cli("--state-dir", str(state), "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(processes.is_alive(pid, binary) for pid, binary in procs)
    _assert_restored(second, state / "node")

    started = time.monotonic()
    control_plane.start_real_node(
        Path(kube_cluster.extra["state_dir"]), die_with_parent=True, node_images=False
    )
    assert time.monotonic() - started < 90
    assert len(_real_nodes(kube_cluster)) == 1
