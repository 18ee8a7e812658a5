"""Dev-cluster numbers: cold build time, warm ``up`` time, idle memory, pods-to-Ready.

    python benchmarks/cluster.py [--runs 3] [--pods 100] [--markdown docs/benchmarks-cluster.md]

The cold build time is read from ``$WATTSERVE_CACHE/bin/build-times.json`` (written by the
first ``wattserve dev-cluster build``); the cache is never wiped here.  Everything else is
measured on a fresh dev cluster in a private state directory, which is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wattserve.devcluster import build, components, control_plane, processes
from wattserve.devcluster.state import ClusterState

POOL = "cpu-general"


def cold_build_times() -> dict[str, Any]:
    """First recorded (non-cached) build of each component, from the build log."""
    path = components.cache_dir() / "bin" / "build-times.json"
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"source": str(path), "components": {}, "total_s": None}
    first: dict[str, float] = {}
    for entry in history:
        first.setdefault(str(entry["component"]), float(entry["seconds"]))
    return {"source": str(path), "components": first, "total_s": round(sum(first.values()), 1)}


def idle_rss_mib(st: ClusterState) -> dict[str, float]:
    per = {r.name: processes.rss_bytes(r.pid) / 2**20 for r in st.processes}
    per["total"] = sum(per.values())
    return {k: round(v, 1) for k, v in per.items()}


def kubectl(st: ClusterState, *args: str, stdin: str | None = None) -> str:
    cmd = [str(components.binary_paths()["kubectl"]), f"--kubeconfig={st.kubeconfig}", *args]
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def pods_to_ready(st: ClusterState, count: int, timeout_s: float = 300.0) -> dict[str, float]:
    """Apply a Deployment of ``count`` replicas on the CPU pool; time until all are Ready."""
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "replicas": count,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {
                    "nodeSelector": {"wattserve.dev/pool": POOL},
                    "tolerations": [
                        {
                            "key": "wattserve.dev/pool",
                            "operator": "Equal",
                            "value": POOL,
                            "effect": "NoSchedule",
                        }
                    ],
                    "containers": [
                        {
                            "name": "c",
                            "image": "example.invalid/bench:1",
                            "resources": {"requests": {"cpu": "10m"}},
                        }
                    ],
                },
            },
        },
    }
    start = time.monotonic()
    kubectl(st, "apply", "-f", "-", stdin=json.dumps(manifest))
    deadline = start + timeout_s
    ready = 0
    while time.monotonic() < deadline:
        status = json.loads(kubectl(st, "get", "deployment", "bench", "-o", "json"))["status"]
        ready = int(status.get("readyReplicas", 0))
        if ready >= count:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    if ready < count:
        raise RuntimeError(f"only {ready}/{count} pods Ready after {timeout_s:.0f}s")
    delete_start = time.monotonic()
    kubectl(st, "delete", "deployment", "bench", "--wait=false")
    while time.monotonic() < delete_start + timeout_s:
        if not kubectl(st, "get", "pods", "-l", "app=bench", "-o", "name").strip():
            break
        time.sleep(0.2)
    return {
        "pods": count,
        "all_ready_s": round(elapsed, 2),
        "pods_per_s": round(count / elapsed, 1),
        "all_deleted_s": round(time.monotonic() - delete_start, 2),
    }


def run(runs: int, pods: int, idle_s: float) -> dict[str, Any]:
    build.build_all(echo=lambda m: print(m, file=sys.stderr))
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "kubernetes": components.KUBERNETES_VERSION,
        "cold_build": cold_build_times(),
    }
    up_times = []
    with tempfile.TemporaryDirectory(prefix="wattserve-bench-") as tmp:
        state_dir = Path(tmp) / "cluster"
        for i in range(runs):
            t0 = time.monotonic()
            st = control_plane.up(state_dir)
            up_times.append(time.monotonic() - t0)
            print(f"warm up #{i + 1}: {up_times[-1]:.1f}s", file=sys.stderr)
            if i == runs - 1:
                time.sleep(idle_s)
                results["idle_rss_mib"] = idle_rss_mib(st)
                results["pods_to_ready"] = pods_to_ready(st, pods)
            control_plane.down(state_dir)
    results["warm_up_s"] = {
        "runs": [round(t, 2) for t in up_times],
        "median": round(statistics.median(up_times), 2),
        "min": round(min(up_times), 2),
    }
    return results


def markdown(res: dict[str, Any]) -> str:
    cold = res["cold_build"]
    rows = "\n".join(f"| {name} | {secs:.0f} s |" for name, secs in cold["components"].items())
    rss = res["idle_rss_mib"]
    rss_rows = "\n".join(f"| {k} | {v:.0f} MiB |" for k, v in rss.items() if k != "total")
    p2r = res["pods_to_ready"]
    up = res["warm_up_s"]
    return f"""# Dev cluster benchmarks

Measured by `python benchmarks/cluster.py` on {res["machine"]["cpus"]} CPU cores
({res["machine"]["platform"]}), Kubernetes {res["kubernetes"]}.

## Cold build (first `wattserve dev-cluster build`, from `build-times.json`)

| component | time |
|---|---|
{rows}
| **total** | **{cold["total_s"]:.0f} s** |

## Warm `up` (binaries cached; etcd + apiserver + controller-manager + scheduler + kwok,
7 simulated nodes Ready, `default` ServiceAccount present)

runs: {", ".join(f"{t:.1f} s" for t in up["runs"])} — median **{up["median"]:.1f} s**
(target ≤ 20 s).

## Idle memory (RSS after the cluster sat idle)

| component | RSS |
|---|---|
{rss_rows}
| **total** | **{rss["total"]:.0f} MiB** |

## Pods to Ready on simulated nodes

{p2r["pods"]} pods (one Deployment, CPU pool): all Ready after **{p2r["all_ready_s"]:.1f} s**
({p2r["pods_per_s"]:.1f} pods/s); all deleted {p2r["all_deleted_s"]:.1f} s after the delete.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=3, help="warm up/down cycles")
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds idle before RSS")
    ap.add_argument("--markdown", type=Path, help="also write the figures as Markdown here")
    args = ap.parse_args()
    res = run(args.runs, args.pods, args.idle)
    print(json.dumps(res, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
