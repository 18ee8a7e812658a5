"""KubeRay on the real node, measured: SmolLM2 served by real Ray pods (issue 12).

    python benchmarks/ray_realnode.py [--runs 1] [--json out.json]

Runs ``tests/integration/test_kuberay_realnode.py`` (a private dev cluster with the real
node, without the node's default images: ``WATTSERVE_NODE_IMAGES=0``; the machine's
real-node lock is taken here, per run) ``--runs`` times and prints, per run and side by
side: apply -> RayService Ready -> first streamed token, scale-up -> new worker Ready -> its
replica serving, scale-down -> one replica -> worker pod gone, the working-set memory of
every Ray pod (kubelet summary API) and the node's CPU requests. The figures are the
test's own (``$WATTSERVE_RAY_FIGURES``); the module's operator-in-the-loop test is left out
(it measures nothing printed here).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/integration/test_kuberay_realnode.py"
ROWS = (
    ("apply_to_rayservice_ready_s", "apply -> RayService Ready (s)"),
    ("apply_to_first_token_s", "apply -> first streamed token (s)"),
    ("first_token_request_s", "first request: time to first token (s)"),
    ("scale_up_to_worker_ready_s", "1 -> 2: new Ray worker pod Ready (s)"),
    ("scale_up_to_new_replica_serving_s", "1 -> 2: new replica answering (s)"),
    ("scale_down_to_one_replica_s", "2 -> 1: Serve at one replica (s)"),
    ("scale_down_to_worker_pod_gone_s", "2 -> 1: idle worker pod gone (s)"),
)


def _take_real_node(path: str, wait_s: float) -> Any:
    """The machine's real-node lock, held for one run (the test session inside then uses a
    private lock path): the wait does not count against the test's own timeout."""
    fh = open(path, "a+")  # noqa: SIM115 - returned, closed by the caller
    started = time.monotonic()
    next_note = 0.0
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited > wait_s:
                fh.close()
                raise SystemExit(f"the real node stayed held for {wait_s:.0f} s") from None
            if waited >= next_note:
                print(f"waiting for the real node ({path}), {waited:.0f} s", file=sys.stderr,
                      flush=True)
                next_note += 30
            time.sleep(1)


def one_run(index: int, timeout_s: float) -> dict[str, Any]:
    lock_path = os.environ.get("WATTSERVE_REAL_NODE_LOCK", "/tmp/wattserve-realnode.lock")
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp, \
            _take_real_node(lock_path, 3600):
        figures = Path(tmp) / "figures.json"
        env = {**os.environ, "WATTSERVE_NODE_IMAGES": "0",
               "WATTSERVE_RAY_FIGURES": str(figures),
               "WATTSERVE_REAL_NODE_LOCK": str(Path(tmp) / "inner.lock")}
        cmd = [sys.executable, "-m", "pytest", TEST, "-x", "-q", "-s", "-p", "no:cacheprovider",
               "-k", "not operator", f"--timeout={int(timeout_s)}"]
        print(f"run {index}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=timeout_s, check=False)
        out: dict[str, Any] = json.loads(figures.read_text()) if figures.is_file() else {}
        out["passed"] = proc.returncode == 0
        return out


def table(runs: list[dict[str, Any]]) -> str:
    head = "| | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    for key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(str(r.get(key, "—")) for r in runs) + " |")
    for key, label in (("memory_working_set_mib_1_replica", "1 replica"),
                       ("memory_working_set_mib_2_replicas", "2 replicas")):
        for role in ("head", "worker"):
            cells = []
            for run in runs:
                pods = run.get(key) or {}
                mib = [v for name, v in sorted(pods.items()) if f"-{role}-" in name]
                cells.append(" / ".join(f"{v:.0f}" for v in mib) or "—")
            lines.append(f"| {role} pod working set, {label} (MiB) | " + " | ".join(cells)
                         + " |")
    cells = [f"{(r.get('node_cpu_2_replicas') or {}).get('requested_m', '—')} of "
             f"{(r.get('node_cpu_2_replicas') or {}).get('allocatable_m', '—')}" for r in runs]
    lines.append("| node CPU requested, 2 replicas (m) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600.0, help="per run, seconds")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.runs < 1:
        print("--runs: must be >= 1", file=sys.stderr)
        return 2
    runs = [one_run(i + 1, args.timeout) for i in range(args.runs)]
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    print(table(runs))
    return 0 if all(r["passed"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
