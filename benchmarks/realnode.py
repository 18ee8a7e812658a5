"""Real-node numbers, side by side in one run: `up` with and without the real node, node start
time, node memory overhead (RSS of containerd, kubelet, kube-proxy, CoreDNS and the shims),
and real pod apply -> Ready.

    python benchmarks/realnode.py [--pods 5] [--markdown docs/benchmarks-realnode.md]

Needs root on Linux and the packages of scripts/setup.d/15-realnode.sh.  Each cluster runs in
a private state directory that is removed at the end.  Only one real node runs per machine:
stop other dev clusters with a real node first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wattserve.devcluster import components, containerd, control_plane, processes, realnode
from wattserve.devcluster.state import ClusterState


def kubectl(st: ClusterState, *args: str, stdin: str | None = None) -> str:
    cmd = [str(components.binary_paths()["kubectl"]), f"--kubeconfig={st.kubeconfig}", *args]
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def node_rss_mib(st: ClusterState) -> dict[str, float]:
    per = {
        r.name: processes.rss_bytes(r.pid) / 2**20
        for r in st.processes
        if r.name in realnode.NODE_PROCESSES
    }
    dirs = realnode.dirs_for(st)
    paths = containerd.Paths(dirs.containerd_root, dirs.containerd_state, dirs.conf, dirs.cni_conf)
    shims = containerd.shim_pids(paths)
    per["shims"] = sum(processes.rss_bytes(p) for p in shims) / 2**20
    per["total"] = sum(per.values())
    out = {k: round(v, 1) for k, v in per.items()}
    out["shim_count"] = len(shims)
    return out


def real_pods_to_ready(st: ClusterState, count: int, timeout_s: float = 120.0) -> float:
    """A Deployment of ``count`` busybox pods on the real node; seconds until all are Ready."""
    pod = {
        "nodeSelector": {"wattserve.dev/pool": "cpu-local"},
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "main",
                "image": containerd.BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
    }
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench-real", "namespace": "default"},
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": {"app": "bench-real"}},
            "template": {"metadata": {"labels": {"app": "bench-real"}}, "spec": pod},
        },
    }
    start = time.monotonic()
    kubectl(st, "apply", "-f", "-", stdin=json.dumps(manifest))
    while time.monotonic() - start < timeout_s:
        status = json.loads(kubectl(st, "get", "deploy", "bench-real", "-o", "json"))["status"]
        if status.get("readyReplicas", 0) == count:
            return round(time.monotonic() - start, 2)
        time.sleep(0.2)
    raise TimeoutError(f"{count} real pods not Ready after {timeout_s:.0f}s")


def measure(pods: int) -> dict[str, Any]:
    why = realnode.unavailable_reason()
    if why is not None:
        sys.exit(f"realnode benchmark: {why}")
    result: dict[str, Any] = {}
    for label, real in (("kwok only", False), ("with real node", True)):
        with tempfile.TemporaryDirectory(prefix="ws-bench-realnode-") as tmp:
            state = Path(tmp) / "state"
            t0 = time.monotonic()
            st = control_plane.up(state, real_node=real, node_images=False)
            up_s = round(time.monotonic() - t0, 2)
            try:
                row: dict[str, Any] = {"up_s": up_s}
                if real:
                    assert st.real_node, "the real node did not start"
                    row["node_start_s"] = st.real_node.get("start_s")
                    row["idle_rss_mib"] = node_rss_mib(st)
                    row[f"{pods}_pods_ready_s"] = real_pods_to_ready(st, pods)
                    row["rss_with_pods_mib"] = node_rss_mib(st)
                result[label] = row
            finally:
                t1 = time.monotonic()
                control_plane.down(state)
                result[label]["down_s"] = round(time.monotonic() - t1, 2)
    return result


def markdown(result: dict[str, Any], pods: int) -> str:
    real = result["with real node"]
    idle, busy = real["idle_rss_mib"], real["rss_with_pods_mib"]
    lines = [
        "| figure | kwok only | with real node |",
        "|---|---|---|",
        f"| `up` (s) | {result['kwok only']['up_s']} | {real['up_s']} |",
        f"| `down` (s) | {result['kwok only']['down_s']} | {real['down_s']} |",
        f"| real node start, certificates → node Ready (s) | - | {real['node_start_s']} |",
        f"| {pods} busybox pods apply → Ready (s) | - | {real[f'{pods}_pods_ready_s']} |",
        f"| node RSS idle (MiB) | - | {idle['total']} |",
        f"| node RSS with {pods} pods (MiB) | - | {busy['total']} ({busy['shim_count']} shims) |",
        "",
        "Idle RSS by process (MiB): "
        + ", ".join(f"{k} {v}" for k, v in idle.items() if k not in ("total", "shim_count")),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.pods)
    print(json.dumps(result, indent=2))
    table = markdown(result, args.pods)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
