"""A load step on the real node that scaling can meet: how long until p95 is back under the SLO,
against the measured start-up time + one decision interval + the backlog's drain (issue 13,
item 5), over N runs.

    flock /tmp/wattserve-realnode.lock python benchmarks/load_step_realnode.py --runs 3

One dev cluster with the real node (private state dir, removed at the end), a real Prometheus
on the host that finds the serving pods as the chart's PodMonitor does (e2e/harness/realpods.py),
the chart installed with helm (operator pod, autoscaler every 2 s, 10 s PromQL window), then
per run, in a fresh restricted namespace: SmolLM2 (min 1, max 2), the procedure of
e2e/loadstep.py (one replica's speed at maxReplicas 1; idle; maxReplicas 2; a step from
idle to 1.4 x one replica's speed for 50 s; both pods' speed after it). Prints each run's
figures and one table; ``--out`` writes them as JSON.
About 1.7 min per run plus ~40 s for the cluster: keep N <= 4 (the node is shared: <= 15 min).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from e2e import loadstep  # noqa: E402
from e2e import realpods as rp  # noqa: E402
from e2e.harness.realpods import RealPodStack, prometheus_binary  # noqa: E402
from e2e.harness.stack import wait_until  # noqa: E402

COLUMNS = [  # (figure, heading)
    ("mu1", "1 replica (ans/s)"), ("offered", "step (req/s)"), ("mu2", "2 pods (ans/s)"),
    ("decision_s", "step -> pod created (s)"), ("startup_s", "(a) start-up (s)"),
    ("interval_s", "(b) interval (s)"), ("backlog", "backlog"), ("allowance_s", "allowance (s)"),
    ("bound_s", "bound (s)"), ("recovery_s", "(c) p95 back under SLO (s)"),
    ("worst_window_p95_s", "worst 10 s p95 (s)"), ("errors", "errors"),
]


def verdict(f: dict[str, Any]) -> str:
    free = f.get("cpu_two", {}).get("free_for_pods_cores", 0.0)
    if f.get("mu2") is None or free < 1.4 or f["mu2"] <= f["offered"]:
        return f"not measurable (pods had {free} vCPU)"
    if (f.get("decision_s") or 0) < -loadstep.STAMP_RESOLUTION_S:
        return "pod added before the step (while idle)"
    ok = (not f["errors"] and f.get("recovery_s") is not None and f.get("bound_s") is not None
          and f["recovery_s"] <= f["bound_s"])
    return "met" if ok else "NOT met"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    return str(value)


def table(runs: list[dict[str, Any]]) -> str:
    head = "| figure | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"
    rows = [head, "|---|" + "---|" * len(runs)]
    for key, title in COLUMNS:
        rows.append(f"| {title} | " + " | ".join(cell(r.get(key)) for r in runs) + " |")
    rows.append("| pods' vCPU (of 2) with both busy | " + " | ".join(
        str(r.get("cpu_two", {}).get("free_for_pods_cores", "-")) for r in runs) + " |")
    rows.append("| verdict | " + " | ".join(verdict(r) for r in runs) + " |")
    done = [r["recovery_s"] for r in runs if r.get("recovery_s") is not None]
    if done:
        rows.append(f"\n(c) median {statistics.median(done):.1f} s over {len(done)} runs")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not 1 <= args.runs <= 6:
        print("load_step_realnode: --runs must be 1..6 (the real node is shared)",
              file=sys.stderr)
        return 2
    if not prometheus_binary().exists():
        print(f"load_step_realnode: {prometheus_binary()} missing: bash scripts/setup.sh 45",
              file=sys.stderr)
        return 2
    state = Path(tempfile.mkdtemp(prefix="loadstep-bench-"))
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    stack: RealPodStack | None = None
    try:
        kube, real = rp.cluster_up(state, real_node=True)
        if not real:
            print("load_step_realnode: no real node on this machine (see the `up` log)",
                  file=sys.stderr)
            return 1
        stack = RealPodStack(kube=kube, workdir=state, namespace="unused",
                             state_dir=state / "cluster")
        prom = stack.start_prometheus()
        rp.install_chart(kube, state, rp.chart_values(prom.url, interval_s=2))
        for i in range(args.runs):
            ns = f"step{i + 1}"
            rp.restricted_namespace(kube, ns)
            print(f"run {i + 1}/{args.runs} (load average {os.getloadavg()[0]:.1f})",
                  flush=True)
            figures = loadstep.run(kube, ns, say=lambda line: print("  " + line, flush=True))
            figures["load_avg"] = round(os.getloadavg()[0], 1)
            runs.append(figures)
            kube.kubectl("delete", "namespace", ns, "--wait=false")
            wait_until(lambda n=ns: not kube.get("pods", "-n", n)["items"], 120,  # type: ignore[misc]
                       f"the pods of {ns} gone", interval=1.0)
    finally:
        if stack is not None:
            stack.stop_all()
        rp.cluster_down(state)
    print(table(runs))
    print(f"whole benchmark {time.monotonic() - started:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
