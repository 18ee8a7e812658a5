"""A real node next to the kwok pools: containerd, CNI bridge, kubelet, kube-proxy, CoreDNS.

``up`` asks :func:`unavailable_reason` first; where the machine cannot run a node it says so
in one line and the cluster runs the kwok pools alone.  Otherwise :func:`prepare` records the
host (sysctls, iptables chains, cgroups, network namespaces) and adds the node address
*before* the API server starts (it advertises that address), and :func:`start` brings the
node up once the control plane is ready.  :func:`stop` stops every node process, kills what
runs in pods, and restores the host from the record.

Only one real node runs per machine (fixed interface names, port 10250, CoreDNS on :53): the
record in ``/run/wattserve-node/host.json`` names its owner; a dead owner's node is cleaned up
by the next ``up``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattserve.devcluster import cni, containerd, hoststate, nodeconfig, processes
from wattserve.devcluster.apiclient import ApiClient, ApiError
from wattserve.devcluster.components import binary_paths, cache_dir, missing_binaries
from wattserve.devcluster.kubeconfig import write_kubeconfig
from wattserve.devcluster.pki import Pki, issue
from wattserve.devcluster.state import ClusterState, ProcessRecord

RUN_DIR = Path("/run/wattserve-node")
HOST_RECORD = RUN_DIR / "host.json"
COMMANDS = (
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "umoci",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip",
    "conntrack",
    "tar",
)
NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns")
START_TIMEOUT_S = 90.0

Printer = Callable[[str], None]
Start = Callable[[str, list[str], int], ProcessRecord]


class NodeError(RuntimeError):
    """The real node failed to start; the message names the step and the log."""


def node_name() -> str:
    """The machine's hostname when it is a valid node name, else ``wattserve-node``."""
    name = socket.gethostname().split(".")[0].lower()
    ok = name and len(name) <= 63 and all(c.isalnum() or c == "-" for c in name)
    return name if ok and name[0].isalnum() and name[-1].isalnum() else "wattserve-node"


def dirs_for(st: ClusterState, cache: Path | None = None) -> nodeconfig.NodeDirs:
    containerd_root = (cache or cache_dir()) / "node" / "containerd"
    return nodeconfig.NodeDirs(root=st.root / "node", run=RUN_DIR, containerd_root=containerd_root)


def _paths(dirs: nodeconfig.NodeDirs) -> containerd.Paths:
    return containerd.Paths(
        root=dirs.containerd_root,
        state=dirs.containerd_state,
        conf_dir=dirs.conf,
        cni_conf_dir=dirs.cni_conf,
    )


def _owner_alive(record: dict[str, Any]) -> bool:
    return any(processes.is_alive(pid, binary) for pid, binary in record.get("pids", []))


def _read_record() -> dict[str, Any] | None:
    try:
        data = json.loads(HOST_RECORD.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def host_reason() -> str | None:
    """Why this machine cannot run a real node at all, binaries aside (None: it can)."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    if os.geteuid() != 0:
        return "not root (containerd, kubelet and the CNI bridge need root)"
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if cni.cni_bin_dir() is None:
        missing.append("CNI plugins (containernetworking-plugins)")
    if not containerd.BUSYBOX_BINARY.is_file():
        missing.append("busybox (busybox-static)")
    if missing:
        return f"missing {', '.join(missing)} (scripts/setup.d/15-realnode.sh installs them)"
    return None


def unavailable_reason() -> str | None:
    """Why this machine cannot run the real node now (None: it can)."""
    why = host_reason()
    if why is not None:
        return why
    bins = missing_binaries(node=True)
    if bins:
        return f"{', '.join(bins)} not built (run `wattserve dev-cluster build`)"
    record = _read_record()
    if record is not None and _owner_alive(record):
        return f"the real node of {record.get('owner')} is running (one per machine)"
    return None


def recover_stale() -> list[str]:
    """Clean up after a real node whose owner died without ``down``."""
    record = _read_record()
    if record is None or _owner_alive(record):
        return []
    return _cleanup(record)


def prepare(st: ClusterState) -> None:
    """Record the host and add the node address; call before the API server starts."""
    recover_stale()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    dirs = dirs_for(st)
    record = {
        "owner": str(st.root),
        "host": hoststate.snapshot(),
        "pids": [],
        "node_dir": str(dirs.root),
        "containerd_root": str(dirs.containerd_root),
    }
    HOST_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    st.real_node = {"node": node_name(), "host_record": str(HOST_RECORD)}
    st.save()
    cni.add_node_address()


def _record_pids(st: ClusterState) -> None:
    record = _read_record() or {}
    record["pids"] = [(r.pid, r.binary) for r in st.processes if r.name in NODE_PROCESSES]
    HOST_RECORD.write_text(json.dumps(record, indent=2) + "\n")


def _issue_certs(st: ClusterState, pki: Pki, name: str) -> dict[str, Path]:
    issue(pki, "kubelet", f"system:node:{name}", "system:nodes")
    issue(
        pki,
        "kubelet-serving",
        f"system:node:{name}",
        "system:nodes",
        server_sans=[cni.NODE_IP, name, "localhost", "127.0.0.1"],
    )
    issue(pki, "kube-proxy", "system:kube-proxy")
    issue(pki, "coredns", nodeconfig.COREDNS_USER)
    server = f"https://127.0.0.1:{st.api_port}"
    out = {}
    for stem in ("kubelet", "kube-proxy", "coredns"):
        path = st.component_kubeconfig(stem)
        write_kubeconfig(path, server, pki.ca_cert, pki.cert(stem), pki.key(stem), stem)
        out[stem] = path
    return out


def _wait(
    check: Callable[[], tuple[bool, str]],
    what: str,
    timeout: float = START_TIMEOUT_S,
    log: str = "",
) -> None:
    detail = ""

    def step() -> bool:
        nonlocal detail
        ok, detail = check()
        return ok

    try:
        processes.poll(step, timeout, what, interval=0.2)
    except processes.PollTimeout:
        raise NodeError(f"real node: timed out waiting for {what}: {detail[-200:]} "
                        f"(log: {log})") from None


def _node_ready(client: ApiClient, name: str) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        try:
            node = client.get_json(f"/api/v1/nodes/{name}")
        except (ApiError, OSError) as exc:
            return False, str(exc)
        conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        return conds.get("Ready") == "True", f"conditions {conds}"

    return check


def _load_app_images(paths: containerd.Paths, echo: Printer) -> None:
    """The operator and serving images on the node (built here if not cached; never fatal:
    the node runs without them, and the line says why)."""
    from wattserve import images

    missing = images.missing_tools()
    if missing:
        echo(f"real node: wattserve images not built ({'; '.join(missing)})")
        return
    try:
        refs = images.ensure_images(paths.socket, log=echo)
    except (images.BuildError, images.ContainerdError, OSError) as exc:
        echo(f"real node: wattserve images not loaded: {str(exc).splitlines()[0]}")
        return
    echo(f"real node: images present: {', '.join(refs)}")


def start(
    st: ClusterState,
    pki: Pki,
    client: ApiClient,
    spawn: Start,
    echo: Printer,
    cache: Path,
    images: bool = True,
) -> None:
    """Start containerd, kubelet, kube-proxy and CoreDNS; wait for the node to be Ready."""
    t0 = time.monotonic()
    bins = binary_paths()
    name = node_name()
    dirs = dirs_for(st, cache)
    paths = _paths(dirs)
    kubeconfigs = _issue_certs(st, pki, name)
    for path, obj in nodeconfig.COREDNS_RBAC:
        client.create(path, obj)

    cni_bin = cni.cni_bin_dir()
    assert cni_bin is not None  # checked by unavailable_reason
    cni.write_conflist(dirs.cni_conf, dirs.ipam)
    ctr_metrics = processes.free_port()
    containerd.write_config(paths, cni_bin, ctr_metrics)
    containerd_bin = shutil.which("containerd") or "containerd"
    spawn("containerd", containerd.command(containerd_bin, paths), ctr_metrics)
    _record_pids(st)
    _wait(
        lambda: (paths.socket.exists() and processes.port_open(ctr_metrics), "no socket"),
        "containerd",
        30,
        str(st.log("containerd")),
    )
    containerd.import_node_images(paths, containerd.node_image_archive(cache))
    if images:
        _load_app_images(paths, echo)

    healthz = processes.free_port()
    cfg = nodeconfig.kubelet_config(dirs, pki.root, paths.socket, healthz)
    cfg["tlsCertFile"], cfg["tlsPrivateKeyFile"] = (
        str(pki.cert("kubelet-serving")),
        str(pki.key("kubelet-serving")),
    )
    cfg["authentication"]["x509"]["clientCAFile"] = str(pki.ca_cert)
    kubelet_conf = dirs.conf / "kubelet.yaml"
    nodeconfig.write_kubelet_config(kubelet_conf, cfg)
    for d in (dirs.kubelet_root, dirs.pod_logs):
        d.mkdir(parents=True, exist_ok=True)
    spawn(
        "kubelet",
        nodeconfig.kubelet_cmd(bins["kubelet"], dirs, kubelet_conf, kubeconfigs["kubelet"], name),
        healthz,
    )
    _record_pids(st)

    proxy_conf = dirs.conf / "kube-proxy.yaml"
    proxy_healthz, proxy_metrics = processes.free_port(), processes.free_port()
    proxy_conf.write_text(
        nodeconfig.kube_proxy_config(kubeconfigs["kube-proxy"], name, proxy_healthz, proxy_metrics)
    )
    spawn("kube-proxy", nodeconfig.kube_proxy_cmd(bins["kube-proxy"], proxy_conf), proxy_healthz)

    corefile = dirs.conf / "Corefile"
    dns_health, dns_ready = processes.free_port(), processes.free_port()
    corefile.write_text(nodeconfig.corefile(kubeconfigs["coredns"], dns_health, dns_ready))
    spawn("coredns", nodeconfig.coredns_cmd(bins["coredns"], corefile), dns_health)
    _record_pids(st)

    _wait(_node_ready(client, name), f"node {name} Ready", log=str(st.log("kubelet")))
    _wait(
        lambda: (processes.port_open(dns_ready), "not ready"), "CoreDNS", log=str(st.log("coredns"))
    )
    _wait(
        lambda: (processes.port_open(proxy_healthz), "no healthz"),
        "kube-proxy",
        log=str(st.log("kube-proxy")),
    )
    st.real_node = {
        **(st.real_node or {}),
        "node": name,
        "start_s": round(time.monotonic() - t0, 2),
    }
    st.save()
    echo(
        f"real node {name} Ready (pool {nodeconfig.POOL_NAME}, {cni.NODE_IP}) "
        f"in {time.monotonic() - t0:.1f}s"
    )


def _cleanup(record: dict[str, Any]) -> list[str]:
    """Kill pods and shims of the recorded node, restore the host, drop the record."""
    node_dir = Path(record.get("node_dir", "/nonexistent"))
    ctr_root = Path(record.get("containerd_root", node_dir / "containerd"))
    paths = containerd.Paths(
        root=ctr_root,
        state=RUN_DIR / "containerd",
        conf_dir=node_dir / "conf",
        cni_conf_dir=node_dir / "cni",
    )
    before = record.get("host", {})
    for _ in range(3):
        if not hoststate.kill_cgroup_processes(before.get("cgroups", [])):
            break
        time.sleep(0.3)
    for pid in containerd.shim_pids(paths):
        processes.stop(pid, grace_s=2.0)
    problems = hoststate.restore(before, [node_dir, ctr_root, RUN_DIR], cni.links())
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    return problems


def stop(st: ClusterState) -> list[str]:
    """Stop the node's processes (kubelet first), clean up; return what could not be undone."""
    if not st.real_node:
        return []
    stuck = []
    order = ["kubelet", "kube-proxy", "coredns"]
    by_name = {r.name: r for r in st.processes}
    for name in order:
        rec = by_name.get(name)
        if rec is not None and not processes.stop(rec.pid, rec.binary):
            stuck.append(f"{name} (pid {rec.pid})")
    record = _read_record() or {"host": {}, "node_dir": str(dirs_for(st).root)}
    # Pods and shims go before containerd, which would otherwise leave them orphaned.
    before = record.get("host", {})
    hoststate.kill_cgroup_processes(before.get("cgroups", []))
    rec = by_name.get("containerd")
    if rec is not None and not processes.stop(rec.pid, rec.binary):
        stuck.append(f"containerd (pid {rec.pid})")
    problems = stuck + _cleanup(record) if record.get("host") else stuck
    st.processes = [r for r in st.processes if r.name not in NODE_PROCESSES]
    st.real_node = None
    st.save()
    return problems
