"""The live part of `make demo` on real pods (the dev cluster's real node).

The steps a user takes, no others: `dev-cluster up` (with the real node), `helm install` the
chart (the operator as the chart's pod), `kubectl apply` SmolLM2 from its model image into a
restricted namespace; a real Prometheus on the host finds the serving pods through Kubernetes
service discovery (the chart PodMonitor's selection and relabelling) and the operator pod reads
it. Load goes through the Service's ClusterIP at a rate that one replica cannot serve within
the SLO but two can (1.4 x the measured capacity of one replica); the autoscaler adds the
second real pod on the real node (often before one replica's queue pushes p95 over the SLO),
the demo tells when p95 is under the SLO over sliding windows of sends, and when the load
stops it scales back down.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from e2e import loadstep as ls
from e2e import realpods as rp
from e2e.harness.stack import Kube, condition, md_status, wait_until

NAMESPACE = "demo"
MD = "smollm2-135m"
SLO_S = 3.0
MAX_TOKENS = 32
OVERLOAD = 1.4  # offered load / one replica's measured capacity: two replicas can meet it


@dataclass
class Timeline:
    """When the second pod became Ready, and when it answered its first request."""

    load_start: float = 0.0
    second_ready: float | None = None
    second_serving: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # (sent, latency)


def _chat_s(url: str) -> float | None:
    body = {"model": rp.MODEL_NAME, "max_tokens": MAX_TOKENS, "temperature": 0.0,
            "messages": [{"role": "user", "content": rp.LONG_PROMPT}]}
    started = time.monotonic()
    try:
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
    except httpx.HTTPError:
        return None
    return time.monotonic() - started if response.status_code == 200 else None


def _paced_chat_s(url: str) -> float | None:
    """One timed request, then a pause of twice its time: timing one replica must not itself
    be a load that one replica cannot serve (back to back, it would be: the autoscaler would
    add the second pod before the load starts)."""
    took = _chat_s(url)
    time.sleep(2 * (took or 1.0))
    return took


def _status_line(kube: Kube, say: Callable[[str], None], window: rp.Window | None) -> None:
    status = md_status(kube, NAMESPACE, MD)
    observed, replicas = status.get("observed", {}), status.get("replicas", {})
    client = "" if window is None or not window.latencies_s else (
        f"client p95 {window.p95():.1f} s over {window.ok} answers"
        f"{f', {window.errors} errors' if window.errors else ''}; ")
    say(f"{MD}: {client}pods {len(rp.ready_pods(kube, NAMESPACE, MD))} Ready, replicas "
        f"{replicas.get('ready', '-')}/{replicas.get('desired', '-')}, operator sees p95 "
        f"{observed.get('p95LatencyMs', '-')} ms at {observed.get('requestRate', '-')} req/s "
        f"(SLO {SLO_S * 1000:.0f} ms)")


def _remove_earlier(kube: Kube) -> bool:
    """Delete the deployment an earlier run left, and wait for its pods to go; whether
    there was one. (Re-applied unchanged, it would keep its scaler's calibration and
    replicas from that run's load.)"""
    if not kube.kubectl("get", "md", MD, "-n", NAMESPACE, "--ignore-not-found", "-o",
                        "name").stdout.strip():
        return False
    kube.kubectl("delete", "md", MD, "-n", NAMESPACE, "--ignore-not-found", "--wait=true",
                 "--timeout=120s")
    wait_until(lambda: not rp.pods(kube, NAMESPACE, MD), 120, "the earlier pods to go")
    return True


def _watch_second_pod(kube: Kube, first: str, timeline: Timeline,
                      stop: threading.Event) -> None:
    """Any Ready pod but ``first`` (the one that answered before the load) is the second;
    one already Ready now counts from the load's start."""
    while True:
        try:
            pods = rp.ready_pods(kube, NAMESPACE, MD)
        except RuntimeError:
            pods = []
        new = [p for p in pods if p["metadata"]["name"] != first]
        if new and timeline.second_ready is None:
            timeline.second_ready = time.monotonic()
        if new and timeline.second_serving is None and rp.served_requests(
                new[0]["status"]["podIP"]) > 0:
            timeline.second_serving = time.monotonic()
            return
        if stop.wait(0.5):
            return


def _phase_p95(timeline: Timeline, after: bool) -> tuple[float, int]:
    """p95 of requests sent before the second pod was Ready, or after it was serving (+ the
    time the backlog of the overloaded phase takes to drain, one SLO)."""
    if timeline.second_serving is None:
        return (float("nan"), 0)
    cut = timeline.second_serving + (SLO_S if after else 0.0)
    picked = [lat for sent, lat in timeline.samples
              if (sent >= cut if after else sent < (timeline.second_ready or cut))]
    return rp.percentile(picked, 0.95), len(picked)


def _recovery_line(timeline: Timeline, step: float, load_s: float,
                   figures: dict[str, Any]) -> str:
    """When p95 came back under the SLO after the second pod began serving, judged over
    sliding windows of sends (e2e/loadstep.py); records recovery_s / last_window_p95_s."""
    end = timeline.load_start + load_s
    windows = ls.window_p95s(timeline.samples, step, end)
    if not windows:
        return (f"no {ls.WINDOW_S:.0f} s window of sends fits between the second pod's first "
                "answer and the end of the load: recovery not measured")
    rec = ls.recovery_s(timeline.samples, step, end, SLO_S)
    last = windows[-1][1]
    figures.update(recovery_s=None if rec is None else round(rec, 1),
                   last_window_p95_s=round(last, 2))
    if rec == 0.0:
        return (f"p95 under the SLO in every {ls.WINDOW_S:.0f} s window of sends from the second "
                f"pod's first answer on (last: {last:.1f} s)")
    if rec is not None:
        return (f"p95 back under the SLO {rec:.1f} s after the second pod began serving: every "
                f"{ls.WINDOW_S:.0f} s window of sends from then on has p95 <= {SLO_S:.0f} s "
                f"(last: {last:.1f} s)")
    return (f"p95 of the last {ls.WINDOW_S:.0f} s window of sends still {last:.1f} s (SLO "
            f"{SLO_S:.0f} s) when the load ended: the backlog of the overloaded minute had not "
            "drained; on a shared machine the second pod adds only the CPU left free")


def run(state: Path, kube: Kube, say: Callable[[str], None], load_s: float,
        watch_s: float) -> dict[str, Any]:
    """The live part; returns the measured figures (also written to state/measured.json)."""
    figures: dict[str, Any] = {}
    prom = rp.KubePrometheus(state / "prometheus", kube, scrape_interval=1.0)
    prom.start()
    assert prom.process is not None
    (state / "pids.json").write_text(json.dumps({"prometheus": prom.process.pid}))
    say(f"Prometheus {prom.url} (on the host) finds the serving pods with the chart "
        f"PodMonitor's selection and relabelling, through {prom.discovery}")
    say("helm install wattserve charts/wattserve -n wattserve-system (the operator as the "
        "chart's pod on the real node; ServingPools incl. cpu-local, the real node)")
    figures["helm_install_s"] = round(rp.install_chart(kube, state, rp.chart_values(prom.url)), 1)
    say(f"operator pod Ready after {figures['helm_install_s']} s")
    rp.restricted_namespace(kube, NAMESPACE)
    if _remove_earlier(kube):
        say(f"removed the {MD} deployment an earlier `make demo` left (and what it learned): "
            "the story starts from a fresh one")
    doc = rp.smollm2_doc(MD, minReplicas=1, maxReplicas=2, scaleDownDelaySeconds=15)
    say(f"kubectl apply SmolLM2-135M (examples/models/smollm2-135m-oci.yaml, min 1 / max 2 "
        f"replicas) in the restricted namespace {NAMESPACE}")
    started = time.monotonic()
    rp.apply(kube, NAMESPACE, doc)
    rp.wait_ready(kube, NAMESPACE, MD, 1, 300)
    url = rp.service_url(kube, NAMESPACE, MD)
    wait_until(lambda: _chat_s(url) is not None, 120, "a first answer through the ClusterIP")
    figures["apply_to_first_answer_s"] = round(time.monotonic() - started, 1)
    pod = rp.ready_pods(kube, NAMESPACE, MD)[0]
    res = pod["spec"]["containers"][0]["resources"]
    placement = md_status(kube, NAMESPACE, MD).get("placement", {})
    say(f"placed on {placement.get('pool')} ({placement.get('reason', '')[:110]})")
    say(f"real pod {pod['metadata']['name']} on node {pod['spec']['nodeName']} "
        f"(requests {res['requests']['cpu']} CPU, limit {res['limits']['cpu']}: "
        f"{placement.get('replicasPerNode')} fit the node); first answer through ClusterIP "
        f"{url} {figures['apply_to_first_answer_s']} s after the apply")
    times = [t for t in (_paced_chat_s(url) for _ in range(4)) if t is not None]
    service_s = sorted(times)[len(times) // 2] if times else 1.0
    rate = round(OVERLOAD / service_s, 2)
    figures.update(service_s=round(service_s, 2), rate=rate)
    say(f"one replica answers a {MAX_TOKENS}-token request in {service_s:.2f} s (~"
        f"{1 / service_s:.1f} req/s); driving {load_s:.0f} s of load at {rate} req/s "
        f"({OVERLOAD}x one replica) through the ClusterIP")
    timeline = Timeline(load_start=time.monotonic())
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_second_pod,
                               args=(kube, pod["metadata"]["name"], timeline, stop),
                               daemon=True)
    watcher.start()
    pods0, (busy0, total0) = rp.pods_cpu_s(), rp.machine_busy()
    result = asyncio.run(rp.run_load(
        url, rate, load_s, max_tokens=MAX_TOKENS, window_s=10.0,
        on_window=lambda w: threading.Thread(target=_status_line, args=(kube, say, w),
                                             daemon=True).start(),
        samples=timeline.samples))
    stop.set()
    watcher.join(timeout=10)
    pods1, (busy1, total1) = rp.pods_cpu_s(), rp.machine_busy()
    cores = os.cpu_count() or 1
    busy = (busy1 - busy0) / (total1 - total0) * cores
    pods_cores = None if pods0 is None or pods1 is None else (pods1 - pods0) / result.duration_s
    figures.update(machine_busy_cores=round(busy, 2),
                   pods_cores=None if pods_cores is None else round(pods_cores, 2))
    before, n_before = _phase_p95(timeline, after=False)
    after, n_after = _phase_p95(timeline, after=True)
    figures.update(ok=result.ok, errors=result.errors,
                   p95_before_s=round(before, 2) if n_before else None,
                   p95_after_s=round(after, 2) if n_after else None,
                   n_before=n_before, n_after=n_after)
    if timeline.second_ready is not None:
        figures["load_to_second_ready_s"] = round(timeline.second_ready - timeline.load_start, 1)
    if timeline.second_serving is not None:
        figures["load_to_second_serving_s"] = round(
            timeline.second_serving - timeline.load_start, 1)
    say(f"load done: {result.ok} answers, errors {result.errors or 'none'}; this machine's "
        f"{cores} vCPUs were {busy:.1f} busy, of which the pods (all of them) "
        f"{'-' if pods_cores is None else f'{pods_cores:.1f}'}: the second pod can only add "
        "the CPU that other work leaves free")
    if timeline.second_serving is None:
        say("the second pod never served: no scale-up happened")
    else:
        if figures["load_to_second_ready_s"] < 1.0:  # the watcher's first look
            say("the second real pod was already Ready when the load started (the autoscaler "
                "added it on the timing requests); serving "
                f"{figures['load_to_second_serving_s']} s after the load started")
        else:
            say(f"second real pod Ready {figures['load_to_second_ready_s']} s and serving "
                f"{figures['load_to_second_serving_s']} s after the load started")
        if n_before:
            say(f"p95 with 1 pod: {before:.1f} s ({n_before} requests, SLO {SLO_S:.0f} s)")
        say(f"p95 with 2 pods: {after:.1f} s ({n_after} requests sent from one SLO after the "
            "second pod's first answer)")
        say(_recovery_line(timeline, timeline.second_serving, result.duration_s, figures))
    say(f"load stopped; watching the scale-down for up to {watch_s:.0f} s")
    end = time.monotonic() + watch_s
    down_at = None
    while time.monotonic() < end:
        _status_line(kube, say, None)
        status = md_status(kube, NAMESPACE, MD)
        running = [p for p in rp.pods(kube, NAMESPACE, MD)
                   if not p["metadata"].get("deletionTimestamp")]
        if status.get("replicas", {}).get("desired") == 1 and len(running) == 1:
            down_at = time.monotonic()
            break
        time.sleep(5)
    figures["scaled_down"] = down_at is not None
    say("scaled down to 1 replica" if down_at else "not scaled down yet")
    _scaled = condition(md_status(kube, NAMESPACE, MD), "Scaled").get("message", "")
    if _scaled:
        say(f"Scaled: {_scaled[:140]}")
    (state / "measured.json").write_text(json.dumps(figures, indent=2))
    return figures


def scaled_up_and_down(figures: dict[str, Any]) -> bool:
    """The mechanism worked (latency figures are reported, not judged: a shared machine)."""
    return bool(figures.get("load_to_second_serving_s") is not None and figures["scaled_down"])


def quick() -> bool:
    return os.environ.get("WATTSERVE_DEMO_QUICK", "") not in ("", "0")
