"""Bring the local control plane up, report on it, and take it down.

``up`` = etcd -> kube-apiserver (TLS, RBAC) -> controller-manager + scheduler + kwok ->
simulated nodes -> wait for ``/readyz``, Ready nodes and the ``default`` ServiceAccount.
Any failure stops what was started (no process is left behind) and says which log to read.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattserve.devcluster import cni, commands, nodepools, processes, realnode
from wattserve.devcluster.apiclient import ApiClient, ApiError
from wattserve.devcluster.components import (
    KUBERNETES_VERSION,
    binary_paths,
    cache_dir,
    missing_binaries,
)
from wattserve.devcluster.kubeconfig import write_kubeconfig
from wattserve.devcluster.pki import CLIENTS, Pki, create_pki
from wattserve.devcluster.state import ClusterState, ProcessRecord, default_state_dir, state_lock

Printer = Callable[[str], None]
# Written into every state dir; only directories carrying it (or empty ones) are ever deleted.
MARKER = ".wattserve-dev-cluster"


class ClusterError(RuntimeError):
    """The cluster could not be brought up/down; the message says why and where to look."""


def _quiet(_: str) -> None:
    return None


def _wait(
    check: Callable[[], tuple[bool, str]],
    timeout: float,
    what: str,
    st: ClusterState | None = None,
    interval: float = 0.2,
) -> None:
    detail = ""

    def step() -> bool:
        nonlocal detail
        if st is not None:
            for rec in st.processes:
                if not processes.is_alive(rec.pid):
                    raise ClusterError(f"{rec.name} exited while waiting for {what}; see {rec.log}")
        ok, detail = check()
        return ok

    try:
        processes.poll(step, timeout, what, interval)
    except processes.PollTimeout:
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}: "
                           f"{detail[-300:]}") from None


def admin_client(st: ClusterState, timeout_s: float = 5.0) -> ApiClient:
    pki = Pki(st.pki_dir)
    return ApiClient(st.api_port, pki.ca_cert, pki.cert("admin"), pki.key("admin"), timeout_s)


@dataclass
class _Starter:
    st: ClusterState
    die_with_parent: bool = False

    def start(self, name: str, argv: list[str], port: int) -> ProcessRecord:
        log = self.st.log(name)
        pid = processes.spawn(argv, log, die_with_parent=self.die_with_parent)
        rec = ProcessRecord(name=name, pid=pid, binary=argv[0], port=port, log=str(log))
        self.st.processes.append(rec)
        self.st.save()
        return rec


def _stop_all(st: ClusterState) -> list[str]:
    """Stop recorded processes in reverse start order; return names that would not stop."""
    stuck = []
    for rec in reversed(st.processes):
        if not processes.stop(rec.pid, rec.binary):
            stuck.append(f"{rec.name} (pid {rec.pid})")
    return stuck


def _ready(st: ClusterState) -> tuple[bool, str]:
    """``/readyz`` of a recorded cluster; (False, why) if it cannot even be asked."""
    if not st.api_port:
        return False, "no API server recorded"
    try:
        return admin_client(st, timeout_s=2.0).ready()
    except (OSError, ValueError) as exc:  # missing/corrupt PKI files
        return False, str(exc)


def is_running(st: ClusterState) -> bool:
    if not st.processes or not all(processes.is_alive(r.pid, r.binary) for r in st.processes):
        return False
    return _ready(st)[0]


def _tcp_ready(port: int) -> Callable[[], tuple[bool, str]]:
    return lambda: (processes.port_open(port), f"port {port} not open")


def _nodes_ready(client: ApiClient, expected: set[str]) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        try:
            items = client.get_json("/api/v1/nodes").get("items", [])
        except (ApiError, OSError) as exc:
            return False, str(exc)
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        }
        missing = sorted(expected - ready)
        return not missing, f"nodes not Ready yet: {', '.join(missing[:5])}"

    return check


def _default_sa(client: ApiClient) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        status, text = client.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200, text[:200]

    return check


def _write_kubeconfigs(st: ClusterState, pki: Pki) -> None:
    server = f"https://127.0.0.1:{st.api_port}"
    for stem, cn, _org in CLIENTS:
        path = st.kubeconfig if stem == "admin" else st.component_kubeconfig(stem)
        write_kubeconfig(path, server, pki.ca_cert, pki.cert(stem), pki.key(stem), cn)


def _boot(
    st: ClusterState,
    pools: list[nodepools.Pool],
    echo: Printer,
    die_with_parent: bool,
    real_node: bool,
    node_images: bool = True,
) -> None:
    bins = binary_paths()
    starter = _Starter(st, die_with_parent)
    t0 = time.monotonic()

    def note(msg: str) -> None:
        echo(f"[up {time.monotonic() - t0:5.1f}s] {msg}")

    node_ip: str | None = None
    if real_node:
        why = realnode.unavailable_reason()
        if why is None:
            realnode.prepare(st)
            node_ip = cni.NODE_IP
        else:
            echo(f"real node: skipped ({why}); running the kwok pools alone")
    pki = create_pki(st.pki_dir, extra_ips=(node_ip,) if node_ip else ())
    etcd_port, peer_port = processes.free_port(), processes.free_port()
    st.api_port = processes.free_port()
    _write_kubeconfigs(st, pki)
    st.save()

    starter.start("etcd", commands.etcd_cmd(bins["etcd"], st, etcd_port, peer_port), etcd_port)
    _wait(_tcp_ready(etcd_port), 30, "etcd", st)
    note(f"etcd listening on 127.0.0.1:{etcd_port}")

    starter.start(
        "kube-apiserver",
        commands.apiserver_cmd(bins["kube-apiserver"], st, pki, st.api_port, etcd_port, node_ip),
        st.api_port,
    )
    client = admin_client(st)
    _wait(client.ready, 120, "kube-apiserver /readyz", st, interval=0.3)
    note(f"kube-apiserver {client.version()} ready on https://127.0.0.1:{st.api_port}")

    kcm_port, sched_port, kwok_port = (processes.free_port() for _ in range(3))
    kcm = commands.controller_manager_cmd(bins["kube-controller-manager"], st, pki, kcm_port)
    starter.start("kube-controller-manager", kcm, kcm_port)
    sched = commands.scheduler_cmd(bins["kube-scheduler"], st, sched_port)
    starter.start("kube-scheduler", sched, sched_port)
    starter.start("kwok", commands.kwok_cmd(bins["kwok"], st, kwok_port), kwok_port)
    note("kube-controller-manager, kube-scheduler, kwok started")

    nodes = nodepools.nodes_manifest(pools)["items"]
    for node in nodes:
        client.create("/api/v1/nodes", node)
    expected = {n["metadata"]["name"] for n in nodes}
    _wait(_nodes_ready(client, expected), 60, f"{len(expected)} simulated nodes to be Ready", st)
    note(f"{len(expected)} simulated nodes Ready ({', '.join(p.name for p in pools)})")
    _wait(_default_sa(client), 60, "ServiceAccount default/default", st)
    for rec in st.processes:
        _wait(_tcp_ready(rec.port), 30, f"{rec.name} port {rec.port}", st)
    note("default ServiceAccount exists; all components healthy")
    if node_ip is not None:
        try:
            realnode.start(st, pki, client, starter.start, note, cache_dir(), node_images)
        except (realnode.NodeError, OSError, ApiError) as exc:
            raise ClusterError(str(exc)) from exc


def up(
    state_dir: Path | None = None,
    pools_file: Path | None = None,
    echo: Printer = _quiet,
    die_with_parent: bool = False,
    real_node: bool = False,
    node_images: bool = True,
) -> ClusterState:
    """Start the cluster (or return the running one). Raises ClusterError on failure.

    ``die_with_parent``: components die when the calling process exits (for test sessions).
    ``real_node``: also start a real node (realnode.py) where the machine can run one; only
    one per machine, so extra clusters (tests, benchmarks) leave it False.
    ``node_images``: also make the operator and serving images present on the real node.
    """
    root = state_dir or default_state_dir()
    pools = nodepools.load_pools(pools_file)
    missing = missing_binaries()
    if missing:
        raise ClusterError(
            f"binaries not built: {', '.join(missing)}; run `wattserve dev-cluster build`"
        )
    with state_lock(root):
        existing = ClusterState.load(root)
        if existing is not None:
            if is_running(existing):
                echo(f"dev cluster already running (kubeconfig: {existing.kubeconfig})")
                return existing
            echo("found a stale dev cluster; cleaning it up first")
            _teardown(existing)
        _remove_state_dir(root)
        root.mkdir(parents=True)
        (root / MARKER).write_text("state directory of `wattserve dev-cluster`\n")
        st = ClusterState(
            root=root,
            kubernetes_version=KUBERNETES_VERSION,
            started_at=time.time(),
            pools_file=str(pools_file or nodepools.DEFAULT_POOLS_FILE),
        )
        st.logs_dir.mkdir()
        try:
            _boot(st, pools, echo, die_with_parent, real_node, node_images)
        except BaseException as exc:
            stuck = realnode.stop(st) + _stop_all(st)
            (root / "state.json").unlink(missing_ok=True)
            extra = f"; could not stop: {', '.join(stuck)}" if stuck else ""
            if isinstance(exc, ClusterError | OSError | ApiError):
                raise ClusterError(f"{exc} (logs in {st.logs_dir}){extra}") from exc
            raise
        return st


def start_real_node(
    state_dir: Path | None = None,
    echo: Printer = _quiet,
    die_with_parent: bool = False,
    node_images: bool = True,
) -> ClusterState:
    """(Re)start the real node of a running cluster whose API server advertises the node
    address (it was started with ``real_node=True``)."""
    root = state_dir or default_state_dir()
    with state_lock(root):
        st = ClusterState.load(root)
        if st is None or not is_running(st):
            raise ClusterError(f"no running dev cluster in {root}")
        api = next(r for r in st.processes if r.name == "kube-apiserver")
        if f"--advertise-address={cni.NODE_IP}" not in processes.cmdline(api.pid):
            raise ClusterError("this cluster was started without the real node (--no-real-node)")
        if st.real_node:
            return st
        why = realnode.unavailable_reason()
        if why is not None:
            raise ClusterError(f"real node: {why}")
        realnode.prepare(st)
        try:
            realnode.start(
                st,
                Pki(st.pki_dir),
                admin_client(st),
                _Starter(st, die_with_parent).start,
                echo,
                cache_dir(),
                node_images,
            )
        except (realnode.NodeError, OSError, ApiError) as exc:
            realnode.stop(st)
            raise ClusterError(str(exc)) from exc
        return st


def _remove_state_dir(root: Path) -> None:
    """Delete ``root`` — but only if it is one of ours (marker) or empty; never a user dir."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ClusterError(f"state dir {root} exists and is not a directory")
    ours = (root / MARKER).is_file() or (root / "state.json").is_file()
    if ours or not any(root.iterdir()):
        shutil.rmtree(root, ignore_errors=True)
        return
    raise ClusterError(
        f"refusing to use {root}: not empty and not a dev-cluster state dir (no {MARKER})"
    )


def _teardown(st: ClusterState) -> None:
    left = realnode.stop(st)
    stuck = _stop_all(st)
    if left:
        raise ClusterError(f"real node: could not undo {', '.join(left)}; state kept in {st.root}")
    if stuck:
        raise ClusterError(f"could not stop {', '.join(stuck)}; state kept in {st.root}")
    _remove_state_dir(st.root)


def down(state_dir: Path | None = None) -> bool:
    """Stop every component by PID and remove the state dir; False if nothing was running."""
    root = state_dir or default_state_dir()
    with state_lock(root):
        st = ClusterState.load(root)
        if st is None:
            _remove_state_dir(root)  # leftovers of a failed `up`
            return False
        _teardown(st)
        return True


def status(state_dir: Path | None = None) -> dict[str, Any]:
    """Machine-readable status (what ``status -o json`` prints)."""
    root = state_dir or default_state_dir()
    st = ClusterState.load(root)
    if st is None:
        return {"state_dir": str(root), "running": False, "components": []}
    comps = [
        {
            "name": r.name,
            "pid": r.pid,
            "alive": processes.is_alive(r.pid, r.binary),
            "port": r.port,
            "listening": processes.port_open(r.port),
            "rss_mib": round(processes.rss_bytes(r.pid) / 2**20, 1),
            "log": r.log,
        }
        for r in st.processes
    ]
    ready, detail = _ready(st)
    nodes: list[dict[str, Any]] = []
    if ready:
        for n in admin_client(st).get_json("/api/v1/nodes").get("items", []):
            conds = {c["type"]: c["status"] for c in n.get("status", {}).get("conditions", [])}
            labels = n["metadata"].get("labels", {})
            nodes.append(
                {
                    "name": n["metadata"]["name"],
                    "pool": labels.get(nodepools.POOL_LABEL, ""),
                    "ready": conds.get("Ready") == "True",
                    "gpus": n.get("status", {})
                    .get("allocatable", {})
                    .get(nodepools.GPU_RESOURCE, "0"),
                }
            )
    return {
        "state_dir": str(root),
        "running": ready and all(c["alive"] for c in comps),
        "server": f"https://127.0.0.1:{st.api_port}",
        "kubeconfig": str(st.kubeconfig),
        "kubernetes_version": st.kubernetes_version,
        "readyz": "ok" if ready else detail,
        "components": comps,
        "nodes": nodes,
        "real_node": st.real_node,
    }
