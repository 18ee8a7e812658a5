"""`make demo`: the whole wattserve loop on this machine, told as a story.

    python -m e2e.demo up [--no-real-node]   # cluster, chart, SmolLM2 pods, load, report
    python -m e2e.demo down                  # stop what `up` left running, remove the cluster

`up` uses the local dev cluster (built from Go modules) with its real node: the operator
runs as the chart's pod and SmolLM2 as real pods that the autoscaler adds and removes
(e2e/demo_realpods.py). Where the machine cannot run the real node (not root, not Linux, a
missing package) or with --no-real-node, it says so in one line and the live part runs on
kwok pods with one local SmolLM2 process standing in for them (the flow below). With
WATTSERVE_DEMO_KUBECONFIG it uses that cluster (kind, or the current kubeconfig) the same
way. The closing report plans the example fleet (e2e/fleet_report.py). Everything `up`
starts keeps running afterwards, so `kubectl get md -n demo` keeps telling the story;
`down` cleans up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wattserve.cli.table import render_table
from wattserve.devcluster import realnode
from wattserve.devcluster.components import binary_paths

from e2e import demo_realpods, fleet_report, realpods
from e2e.harness.loadgen import LONG_PROMPT, run_load
from e2e.harness.stack import REPO, Kube, Stack, condition, md_status, wait_until

STATE = Path(os.environ.get("WATTSERVE_DEMO_STATE",
                            Path.home() / ".local" / "state" / "wattserve" / "demo"))
NAMESPACE = "demo"
START = time.monotonic()
# WATTSERVE_DEMO_QUICK=1 (CI): a shorter load and scale-down watch; the story and the closing
# report are the same.
QUICK = os.environ.get("WATTSERVE_DEMO_QUICK", "") not in ("", "0")
LOAD_S = 60 if QUICK else 120  # real pods: long enough for both phases (1 pod, then 2)
WATCH_S = 50 if QUICK else 60
KWOK_LOAD_S = 25 if QUICK else 45
KWOK_WATCH_S = 40 if QUICK else 60


def say(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def _cluster(real_node: bool = False) -> Kube:
    bins = binary_paths()
    bin_dir = STATE / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("kubectl", "helm"):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(bins[name])
    external = os.environ.get("WATTSERVE_DEMO_KUBECONFIG")
    if external:
        say(f"using the cluster of {external}")
        return Kube(Path(external), bin_dir)
    say("starting the local Kubernetes control plane (etcd, apiserver, controller-manager, "
        "scheduler, kwok node pools)")
    subprocess.run([sys.executable, "-m", "wattserve.cli.main", "dev-cluster",
                    "--state-dir", str(STATE / "cluster"), "up",
                    *(() if real_node else ("--no-real-node",))], check=True)
    kubeconfig = subprocess.run(
        [sys.executable, "-m", "wattserve.cli.main", "dev-cluster", "--state-dir",
         str(STATE / "cluster"), "kubeconfig"], check=True, capture_output=True,
        text=True).stdout.strip()
    return Kube(Path(kubeconfig), bin_dir)


def _fmt(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def _placements(kube: Kube) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get("md", "-n", NAMESPACE)["items"]
    return sorted(items, key=lambda i: i["metadata"]["name"])


def _story_table(kube: Kube) -> str:
    rows = []
    for item in _placements(kube):
        status = item.get("status", {})
        placement = status.get("placement", {})
        spec = item["spec"]
        rows.append([item["metadata"]["name"], spec["model"]["parameters"],
                     spec["model"].get("quantization", "bf16"), _fmt(placement.get("pool")),
                     _fmt(placement.get("engine")),
                     _fmt(placement.get("tensorParallel") or placement.get("threads")),
                     _fmt(status.get("replicas", {}).get("desired")),
                     _fmt(placement.get("predictedP95Ms")), str(spec["slo"]["latencyP95Ms"]),
                     _fmt(placement.get("usdPerHour")), _fmt(placement.get("joulesPerToken")),
                     condition(status, "Ready").get("status", "-")])
    return render_table(["MODEL", "PARAMS", "QUANT", "POOL", "ENGINE", "TP/THR", "REPLICAS",
                         "P95 MS", "SLO MS", "$/HOUR", "J/TOKEN", "READY"], rows)


def _reasons(kube: Kube) -> str:
    return "\n".join(f"  {i['metadata']['name']}: "
                     f"{i.get('status', {}).get('placement', {}).get('reason', '-')}"
                     for i in _placements(kube))


def _versus_gpu(kube: Kube) -> str:
    """What wattserve's placement costs against the cheapest GPU placement of each model."""
    rows = []
    totals = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    for item in _placements(kube):
        placement = item.get("status", {}).get("placement", {})
        if not placement.get("pool"):
            continue
        gpu = [c for c in placement.get("candidates", [])
               if c.get("accelerator") != "cpu" and c.get("feasible")]
        best_gpu = min(gpu, key=lambda c: float(c["usdPerHour"]), default=None)
        ours = [float(placement["usdPerHour"]), _watts(placement),
                _watts(placement) * 481 / 1000]
        theirs = ours if best_gpu is None else [
            float(best_gpu["usdPerHour"]), _watts(best_gpu), _watts(best_gpu) * 481 / 1000]
        for index, value in enumerate(ours + theirs):
            totals[index] += value
        rows.append([item["metadata"]["name"], placement["pool"],
                     f"{ours[0]:.2f}", f"{ours[1]:.0f}",
                     best_gpu["pool"] if best_gpu else "(none feasible)",
                     f"{theirs[0]:.2f}", f"{theirs[1]:.0f}"])
    rows.append(["TOTAL", "", f"{totals[0]:.2f}", f"{totals[1]:.0f}", "", f"{totals[3]:.2f}",
                 f"{totals[4]:.0f}"])
    table = render_table(["MODEL", "WATTSERVE POOL", "$/HOUR", "WATTS", "ALL-GPU POOL",
                          "$/HOUR", "WATTS"], rows)
    saving = 1 - totals[0] / totals[3] if totals[3] else 0.0
    energy = 1 - totals[1] / totals[4] if totals[4] else 0.0
    return (f"{table}\n\nwattserve vs everything on GPUs: {saving:.0%} less money, "
            f"{energy:.0%} less energy, {totals[2]:.0f} vs {totals[5]:.0f} gCO2/hour "
            "(481 gCO2/kWh, world average).")


def _watts(candidate: dict[str, Any]) -> float:
    """Average watts = J/token × tokens/s at the planned load."""
    # usdPerMillionTokens and usdPerHour give tokens/hour; J/token × tokens/s = watts
    usd_hour = float(candidate["usdPerHour"])
    usd_million = float(candidate["usdPerMillionTokens"])
    tokens_per_s = usd_hour / usd_million * 1e6 / 3600 if usd_million else 0.0
    return float(candidate["joulesPerToken"]) * tokens_per_s


def up(real_node: bool = True) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    _stop_processes()  # what an earlier `up` left running; the cluster is started afresh
    why = "--no-real-node" if not real_node else realnode.host_reason()
    if os.environ.get("WATTSERVE_DEMO_KUBECONFIG"):
        return _up_kwok(_cluster())
    if why is None:
        say("starting the local Kubernetes cluster: control plane, kwok node pools and the "
            "real node (containerd, kubelet, kube-proxy, CoreDNS on this machine)")
        kube, real = realpods.cluster_up(STATE, real_node=True)
        if real:
            return _up_real(kube)
        why = "the real node did not start (see the `up` log above)"
        say(f"no real node ({why}): the live part runs on kwok pods with one local SmolLM2 "
            "process standing in for them")
        return _up_kwok(kube)
    say(f"no real node ({why}): the live part runs on kwok pods with one local SmolLM2 "
        "process standing in for them")
    return _up_kwok(_cluster(real_node=False))


def _up_real(kube: Kube) -> int:
    figures = demo_realpods.run(STATE, kube, say, LOAD_S, WATCH_S)
    _fleet()
    figures["demo_s"] = round(time.monotonic() - START, 1)
    (STATE / "measured.json").write_text(json.dumps(figures, indent=2))
    print(f"\nMeasured: {json.dumps(figures)}")
    print(f"\nStill running: `KUBECONFIG={kube.kubeconfig} {kube.bin_dir}/kubectl get md,pods "
          f"-n {NAMESPACE}`; `make demo-down` cleans up.")
    say("demo done")
    if not demo_realpods.scaled_up_and_down(figures):
        say("the scale-up or the scale-down did not happen on the real pods (see above)")
        return 1
    return 0


def _fleet() -> None:
    report = fleet_report.build(fleet_report.load_fleet(), fleet_report.load_pools())
    print("\nThe whole fleet, cost, energy and carbon at the planned load:\n"
          + fleet_report.text(report))


def _up_kwok(kube: Kube) -> int:
    stack = Stack(kube=kube, workdir=STATE, namespace=NAMESPACE, autoscale_interval=3.0)
    say("helm install charts/wattserve (CRDs, RBAC, ServingPools cpu-general, gpu-l4, gpu-h100)")
    stack.install_chart()
    say("starting Prometheus, the real SmolLM2-135M serving app and the operator "
        "(as the chart's ServiceAccount)")
    stack.start_prometheus()
    stack.start_serving()
    stack.start_operator()
    _save_pids(stack)
    count = len(list((REPO / "examples" / "models").glob("*.yaml")))
    say(f"kubectl apply -f examples/models/  ({count} ModelDeployments)")
    kube.kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples" / "models"))
    wait_until(lambda: all(condition(i.get("status", {}), "Placed").get("status")
                           for i in _placements(kube)), 120, "every model placed")
    wait_until(lambda: condition(md_status(kube, NAMESPACE, "smollm2-135m"), "Ready")
               .get("status") == "True", 120, "SmolLM2 Ready")
    print("\nWhere each model went:\n" + _story_table(kube))
    print("\nWhy:\n" + _reasons(kube) + "\n")
    kube.kubectl("patch", "md", "smollm2-135m", "-n", NAMESPACE, "--type=merge", "-p",
                 '{"spec": {"scaling": {"minReplicas": 1, "maxReplicas": 4, '
                 '"scaleDownDelaySeconds": 20}}}')
    say(f"driving {KWOK_LOAD_S} s of load at 3 req/s of 64-token answers against the real "
        "SmolLM2 "
        "(about 3x what its one thread decodes)")
    asyncio.run(_load_with_progress(stack, kube))
    say(f"load stopped; watching the scale-down for up to {KWOK_WATCH_S} s")
    _watch(kube, KWOK_WATCH_S)
    print("\nCost, energy and carbon at the planned load:\n" + _versus_gpu(kube))
    _fleet()
    print(f"\nStill running: `KUBECONFIG={kube.kubeconfig} {kube.bin_dir}/kubectl get md -n "
          f"{NAMESPACE}`; OpenAI API at {stack.serving_url}/v1; `make demo-down` cleans up.")
    say("demo done")
    return 0


async def _load_with_progress(stack: Stack, kube: Kube) -> None:
    task = asyncio.ensure_future(run_load(stack.serving_url, "smollm2-135m-instruct", rate=3.0,
                                          duration_s=KWOK_LOAD_S, max_tokens=64,
                                          prompt=LONG_PROMPT,
                                          max_in_flight=16, max_requests=300))
    while not task.done():
        await asyncio.to_thread(_line, kube)
        await asyncio.sleep(5)
    result = task.result()
    say(f"load: {result.ok} ok, errors {result.errors or 'none'}, client p50 "
        f"{result.percentile(0.5) * 1000:.0f} ms, p95 {result.percentile(0.95) * 1000:.0f} ms")


def _watch(kube: Kube, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        _line(kube)
        time.sleep(5)


def _line(kube: Kube) -> None:
    status = md_status(kube, NAMESPACE, "smollm2-135m")
    observed = status.get("observed", {})
    replicas = status.get("replicas", {})
    say(f"smollm2-135m: replicas {replicas.get('ready', '-')}/{replicas.get('desired', '-')}"
        f" ready, p95 {_fmt(observed.get('p95LatencyMs'))} ms (SLO 3000), "
        f"{_fmt(observed.get('requestRate'))} req/s, "
        f"{_fmt(observed.get('joulesPerToken'))} J/token; "
        f"{condition(status, 'Scaled').get('message', '')[:90]}")


def _save_pids(stack: Stack) -> None:
    pids = {name: proc.proc.pid for name, proc in (("operator", stack.operator),
                                                   ("serving", stack.serving))
            if proc is not None and proc.proc is not None}
    if stack.prometheus is not None and stack.prometheus.process is not None:
        pids["prometheus"] = stack.prometheus.process.pid
    (STATE / "pids.json").write_text(json.dumps(pids))


def _stop_processes() -> None:
    """Stop the host processes a previous `up` left running (its Prometheus holds the lock on
    its data directory: a second `up` without a `down` would fail on it)."""
    pids_file = STATE / "pids.json"
    if not pids_file.exists():
        return
    for name, pid in json.loads(pids_file.read_text()).items():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):  # up to 10 s for it to exit and let go of its files
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        say(f"stopped {name} (pid {pid})")
    pids_file.unlink()


def down() -> int:
    _stop_processes()
    if not realpods.cluster_down(STATE):
        say("`dev-cluster down` failed three times: see above")
        return 1
    say("demo cleaned up")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"] and set(argv[1:]) <= {"--no-real-node"}:
        return up(real_node="--no-real-node" not in argv[1:])
    if argv[:1] == ["down"]:
        return down()
    print("usage: python -m e2e.demo up [--no-real-node] | down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
