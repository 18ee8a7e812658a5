"""Does a scale-up on the real node add real capacity? 1 vs 2 real SmolLM2 pods, side by side
in one run, through the Service's ClusterIP.

    python benchmarks/realpods_scale.py [--seconds 40] [--out result.json]

One dev cluster with the real node (private state dir, removed at the end), the chart installed
with helm (operator pod on the real node), SmolLM2-135M from its model image in a restricted
namespace, on the real-node pool `cpu-local` (2 vCPU; `tuning.cpuMillisPerThread: 500`, so a
1-thread replica requests 500m and may use 1 CPU). Replicas are pinned (min = max) to 1, then
2; for each:

* closed loop: 4 users back to back (saturation throughput of the Service);
* open loop: the same offered rate for both (1.5 x the 1-pod saturation throughput), p95.

Also: MD apply -> first answer through the ClusterIP (image present), 1 -> 2 replicas ->
second pod Ready and answering, node and serving-pod memory. Run under the real-node lock:
flock /tmp/wattserve-realnode.lock python benchmarks/realpods_scale.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from realnode import node_rss_mib  # noqa: E402
from wattserve import contract  # noqa: E402
from wattserve.devcluster.state import ClusterState  # noqa: E402

from e2e import realpods as rp  # noqa: E402
from e2e.harness.stack import wait_until  # noqa: E402

NS = "bench"
MD = "smollm2-135m"


def chat_ok(url: str, timeout: float = 30.0) -> bool:
    body = {"model": rp.MODEL_NAME, "max_tokens": 4,
            "messages": [{"role": "user", "content": "Say hi."}]}
    try:
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def serving_rss_mib() -> list[float]:
    """RSS of each serving app process on this machine (the real pods' llama.cpp servers)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"wattserve_serving" not in cmd and b"wattserve-serve" not in cmd:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(round(int(line.split()[1]) / 1024, 1))
        except OSError:
            continue
    return sorted(out)


def phase(url: str, seconds: float, rate: float | None) -> dict[str, Any]:
    pods0, (busy0, total0), t0 = rp.pods_cpu_s(), rp.machine_busy(), time.monotonic()
    closed = asyncio.run(rp.run_closed(url, clients=4, duration_s=seconds))
    pods1, (busy1, total1), t1 = rp.pods_cpu_s(), rp.machine_busy(), time.monotonic()
    cores = os.cpu_count() or 1
    cpu = {"pods_cores": None if pods0 is None or pods1 is None
           else round((pods1 - pods0) / (t1 - t0), 2),
           "machine_busy_cores": round((busy1 - busy0) / (total1 - total0) * cores, 2)}
    offered = rate if rate is not None else round(1.5 * closed.requests_per_s, 2)
    opened = asyncio.run(rp.run_load(url, offered, seconds, window_s=seconds + 60))
    return {
        "closed": {"rps": round(closed.requests_per_s, 3), **cpu,
                   "tokens_per_s": round(closed.tokens_per_s, 1),
                   "p50_s": round(closed.p50(), 2), "p95_s": round(closed.p95(), 2),
                   "ok": closed.ok, "errors": closed.errors},
        "open": {"offered_rps": offered, "rps": round(opened.requests_per_s, 3),
                 "tokens_per_s": round(opened.tokens_per_s, 1),
                 "p50_s": round(opened.p50(), 2), "p95_s": round(opened.p95(), 2),
                 "sent": opened.sent, "ok": opened.ok, "errors": opened.errors},
    }


def measure(seconds: float, keep: Path | None) -> dict[str, Any]:
    state = keep or Path(tempfile.mkdtemp(prefix="realpods-bench-"))
    result: dict[str, Any] = {"load_avg_start": os.getloadavg()}
    try:
        kube, real = rp.cluster_up(state, real_node=True)
        if not real:
            raise SystemExit("no real node on this machine (see the `up` log): nothing to measure")
        st = ClusterState.load(state / "cluster")
        assert st is not None
        result["node_rss_idle_mib"] = node_rss_mib(st)
        result["helm_install_s"] = round(rp.install_chart(kube, state, {}), 1)
        rp.restricted_namespace(kube, NS)
        started = time.monotonic()
        rp.apply(kube, NS, rp.smollm2_doc(MD, minReplicas=1, maxReplicas=1))
        result["apply_to_ready_s"] = round(rp.wait_ready(kube, NS, MD, 1, 300), 1)
        url = rp.service_url(kube, NS, MD)
        wait_until(lambda: chat_ok(url), 120, "a first answer through the ClusterIP")
        result["apply_to_first_answer_s"] = round(time.monotonic() - started, 1)
        (pod,) = rp.ready_pods(kube, NS, MD)
        result["pod"] = {"requests": pod["spec"]["containers"][0]["resources"]["requests"],
                         "limits": pod["spec"]["containers"][0]["resources"]["limits"],
                         "qos": pod["status"].get("qosClass")}
        print(f"1 pod: {result['pod']}", flush=True)
        one = phase(url, seconds, None)
        result["one_pod"] = one
        print(f"1 pod: {one}", flush=True)
        started = time.monotonic()
        rp.apply(kube, NS, rp.smollm2_doc(MD, minReplicas=2, maxReplicas=2))
        result["scale_to_second_ready_s"] = round(rp.wait_ready(kube, NS, MD, 2, 300), 1)
        pods = rp.ready_pods(kube, NS, MD)
        for p in pods:  # each pod answers on its own address (the Service then spreads)
            pod_url = f"http://{p['status']['podIP']}:{contract.SERVING_PORT}"
            wait_until(lambda u=pod_url: chat_ok(u), 120,  # type: ignore[misc]
                       f"pod {p['metadata']['name']} answering")
        result["scale_to_second_serving_s"] = round(time.monotonic() - started, 1)
        result["nodes"] = sorted({p["spec"]["nodeName"] for p in pods})
        result["serving_rss_mib"] = serving_rss_mib()
        result["node_rss_two_pods_mib"] = node_rss_mib(st)
        two = phase(url, seconds, one["open"]["offered_rps"])
        result["two_pods"] = two
        print(f"2 pods: {two}", flush=True)
        result["ratio_closed_rps"] = round(two["closed"]["rps"] / max(one["closed"]["rps"],
                                                                        1e-9), 2)
        result["ratio_open_rps"] = round(two["open"]["rps"] / max(one["open"]["rps"], 1e-9), 2)
        result["load_avg_end"] = os.getloadavg()
    finally:
        rp.cluster_down(state)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.seconds, None)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
