"""A load step on the real node that scaling can meet, and how long until it is met (issue 13,
item 5): tests/integration/test_load_step_realnode.py and benchmarks/load_step_realnode.py.

On a dev cluster with the real node, the chart installed (operator pod, autoscaler reading a
real Prometheus) and SmolLM2 (min 1, max 2 replicas, the real-node pool `cpu-local` holds 2):

1. one replica's speed ``mu1`` is measured (one user back to back: 1 / the median answer
   time; the replica serves one request at a time), with maxReplicas 1;
2. idle for the operator's PromQL window + one decision, then maxReplicas 2, then a step
   from idle to ``STEP`` x mu1 (one replica cannot meet it, two can) for ``STEP_S`` s, open
   loop, every request a new connection through the Service's ClusterIP (kube-proxy
   spreads them);
3. the figures of the claim: (a) the added pod's start-up, created -> Ready from its own
   timestamps; (b) the autoscaler's decision interval from the operator's config; (c) the time
   from the step until the p95 of the requests *sent from then on* (every window of
   ``WINDOW_S`` s of sends starting then or later) is under the SLO;
4. the allowance for the backlog built before capacity arrived, derived: ``B`` requests were
   outstanding (sent, not answered) when the added pod served its first request; all of them
   wait at the first pod, which from then on receives 1/2 of the new requests (kube-proxy
   spreads new connections evenly), so it drains them with its spare capacity
   ``(mu2 - lambda) / 2``, where ``mu2`` is measured with both pods (closed loop, after the
   step) and ``lambda`` is the offered rate actually sent: allowance = ``2 B / (mu2 - lambda)``;
5. bound = a + b + allowance + 1 s (pod timestamps are whole seconds);
6. whether two pods hold the SLO at all at that rate once the backlog is gone: their steady
   p95 from ``mu2`` and ``lambda`` (M/D/2, the autoscaler's own queueing tail). On a slow
   machine it can sit at the SLO itself, and then no scaling brings p95 under it.

The pure parts (windows, backlog, allowance) are unit tested in tests/unit/test_loadstep.py.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from wattserve.autoscale.queueing import erlang_c
from wattserve.render.meta import selector_labels

from e2e import realpods as rp
from e2e.harness.stack import Kube, condition, md_status, wait_until

MD = "smollm2-step"
RELEASE_NS = "wattserve-system"
OPERATOR_SELECTOR = "app.kubernetes.io/name=wattserve,app.kubernetes.io/component=operator"
INTERVAL_ENV = "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS"
INTERVAL_FLAG = "--autoscale-interval"
WINDOW_FLAG = "--promql-window"
STEP = 1.4  # x one replica's measured speed: one replica cannot serve it, two can
STEP_S = 50.0
ONE_S = 4.0  # seconds of one user back to back: one replica's speed
WINDOW_S = 10.0  # seconds of sends per p95 window
SLIDE_S = 0.5  # windows start every SLIDE_S seconds
PODS = 2  # what the real node holds (cpu-local: 2 x 500m requested)
STAMP_RESOLUTION_S = 1.0  # creationTimestamp / lastTransitionTime are whole seconds
MAX_TOKENS = 32


# -- pure: what the samples say -------------------------------------------------------------
Sample = tuple[float, float]  # (sent, latency) in time.monotonic() seconds


def p95(values: Sequence[float]) -> float:
    return rp.percentile(list(values), 0.95)


def window_p95s(samples: Sequence[Sample], start: float, end: float,
                window_s: float = WINDOW_S, slide_s: float = SLIDE_S
                ) -> list[tuple[float, float, int]]:
    """(window start, p95, count) of the requests sent in [t, t + window_s), for t = start,
    start + slide_s, ... while the window fits before ``end``; empty windows are left out."""
    out = []
    k = 0
    while start + k * slide_s + window_s <= end + 1e-9:
        t = start + k * slide_s
        lat = [lat for sent, lat in samples if t <= sent < t + window_s]
        if lat:
            out.append((t, p95(lat), len(lat)))
        k += 1
    return out


def recovery_s(samples: Sequence[Sample], step: float, end: float, slo_s: float,
               window_s: float = WINDOW_S, slide_s: float = SLIDE_S) -> float | None:
    """Seconds from ``step`` to the first window start from which every window of sends has
    p95 <= ``slo_s`` (0 when none after the step exceeds it); None when the last window still
    exceeds it or no window fits."""
    windows = window_p95s(samples, step, end, window_s, slide_s)
    if not windows or windows[-1][1] > slo_s:
        return None
    last_bad = max((i for i, (_, value, _) in enumerate(windows) if value > slo_s), default=-1)
    if last_bad < 0:
        return 0.0
    return windows[last_bad + 1][0] - step


def outstanding(samples: Sequence[Sample], at: float) -> int:
    """Requests sent at or before ``at`` and answered after it (the backlog then)."""
    return sum(1 for sent, lat in samples if sent <= at < sent + lat)


def backlog_allowance_s(backlog: int, capacity_all: float, offered: float,
                        pods: int = PODS) -> float:
    """Seconds the pod holding ``backlog`` needs to drain it when new requests are spread
    evenly over ``pods`` pods of ``capacity_all`` answers/s together: backlog / its spare
    capacity ((capacity_all - offered) / pods); infinite when there is none."""
    spare = (capacity_all - offered) / pods
    return math.inf if spare <= 0 else backlog / spare


def steady_p95_s(offered: float, capacity_all: float, pods: int = PODS) -> float:
    """The p95 answer time ``pods`` pods of ``capacity_all`` answers/s together keep at
    ``offered``/s once any backlog is gone. Each pod answers one request at a time in
    ``S = pods / capacity_all`` s, the same for every request (32 tokens); the wait is the
    autoscaler's own M/G/c tail (wattserve.autoscale.queueing, Allen-Cunneen) with no
    service-time variance: ``S + S ln(C / 0.05) / (2 (c - a))``, C the Erlang C waiting
    probability at ``a = offered x S``; infinite at or over capacity."""
    if capacity_all <= 0 or offered >= capacity_all:
        return math.inf
    service = pods / capacity_all
    a = offered * service
    waiting = erlang_c(pods, a)
    wait = 0.0 if waiting <= 0.05 else service * math.log(waiting / 0.05) / (2 * (pods - a))
    return service + wait


def interval_from_container(container: dict[str, Any]) -> float | None:
    """The autoscaler's decision interval as the operator container is configured: the
    ``--autoscale-interval`` flag (it wins) or the environment variable."""
    args = [*container.get("command", []), *container.get("args", [])]
    for i, arg in enumerate(args):
        if arg == INTERVAL_FLAG and i + 1 < len(args):
            return float(args[i + 1])
        if arg.startswith(INTERVAL_FLAG + "="):
            return float(arg.split("=", 1)[1])
    for env in container.get("env", []):
        if env.get("name") == INTERVAL_ENV and env.get("value"):
            return float(env["value"])
    return None


def promql_window_from_container(container: dict[str, Any]) -> float:
    """The operator's PromQL window (``--promql-window``, e.g. ``10s`` or ``1m``), seconds;
    or WATTSERVE_PROMQL_WINDOW, or the operator's default (1m)."""
    args = [*container.get("command", []), *container.get("args", [])]
    env = {e.get("name"): e.get("value") for e in container.get("env", [])}
    text = env.get("WATTSERVE_PROMQL_WINDOW") or "1m"
    for i, arg in enumerate(args):
        if arg == WINDOW_FLAG and i + 1 < len(args):
            text = args[i + 1]
        elif arg.startswith(WINDOW_FLAG + "="):
            text = arg.split("=", 1)[1]
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def stamp(text: str) -> float:
    """An API timestamp (RFC 3339, whole seconds) as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def ready_at(pod: dict[str, Any]) -> float | None:
    cond = [c for c in pod.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"]
    return stamp(cond[0]["lastTransitionTime"]) if cond else None


# -- live ---------------------------------------------------------------------------------
def operator_container(kube: Kube) -> dict[str, Any]:
    deps = kube.get("deployments", "-n", RELEASE_NS, "-l", OPERATOR_SELECTOR)["items"]
    assert len(deps) == 1, f"expected one operator Deployment, found {len(deps)}"
    (container,) = [c for c in deps[0]["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "operator"]
    return dict(container)


class Watcher:
    """When a pod that was not there at the start is first seen Ready, then serving; and the
    autoscaler's Scaled condition when the new pod is first seen (why it was added).

    One ``kubectl get pods --watch`` process streams the pods' changes (polling kubectl
    twice a second cost the 2-vCPU machine a good part of a core, taken from the pods under
    test); the new pod's own /metrics tell when it answered its first request."""

    TEMPLATE = ('{.metadata.name}|{.status.podIP}|'
                '{.status.conditions[?(@.type=="Ready")].status}|'
                '{.metadata.deletionTimestamp}{"\\n"}')

    def __init__(self, kube: Kube, ns: str, first: set[str]) -> None:
        self.kube, self.ns, self.first = kube, ns, first
        self.why: str | None = None
        self.ready: float | None = None
        self.serving: float | None = None
        self._ip: str | None = None
        self._stop = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._threads = [threading.Thread(target=self._watch, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]

    def __enter__(self) -> Watcher:
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(MD).items())
        kubectl = self.kube.bin_dir / "kubectl"
        self._proc = subprocess.Popen(
            [str(kubectl if kubectl.exists() else "kubectl"), "get", "pods", "-n", self.ns,
             "-l", selector, "--watch", "-o", f"jsonpath={self.TEMPLATE}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.kube.env())
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        for thread in self._threads:
            thread.join(timeout=15)

    def _watch(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            name, ip, ready, deleting = [*line.rstrip("\n").split("|"), "", "", "", ""][:4]
            if not name or name in self.first or deleting:
                continue
            if self.why is None:
                try:
                    scaled = condition(md_status(self.kube, self.ns, MD), "Scaled")
                    self.why = f"{scaled.get('reason')}: {scaled.get('message', '')[:200]}"
                except (RuntimeError, ValueError):
                    self.why = "-"
            if ready == "True" and ip and self.ready is None:
                self.ready, self._ip = time.monotonic(), ip
            if self._stop.is_set():
                return

    def _poll(self) -> None:
        while self.serving is None and not self._stop.wait(0.5):
            if self._ip is not None and rp.served_requests(self._ip) > 0:
                self.serving = time.monotonic()


def _cpu_phase(url: str, clients: int, seconds: float) -> tuple[rp.Load, dict[str, float]]:
    """A closed-loop phase, and the CPU the pods had: all pods together, and what processes
    outside the pods left them (cores - (machine busy - pods))."""
    pods0, (busy0, total0), t0 = rp.pods_cpu_s(), rp.machine_busy(), time.monotonic()
    load = asyncio.run(rp.run_closed(url, clients=clients, duration_s=seconds,
                                     max_tokens=MAX_TOKENS))
    pods1, (busy1, total1), t1 = rp.pods_cpu_s(), rp.machine_busy(), time.monotonic()
    cores = os.cpu_count() or 1
    busy = (busy1 - busy0) / max(total1 - total0, 1e-9) * cores
    pods = (pods1 - pods0) / (t1 - t0) if pods0 is not None and pods1 is not None else math.nan
    return load, {"machine_busy_cores": round(busy, 2), "pods_cores": round(pods, 2),
                  "free_for_pods_cores": round(cores - (busy - pods), 2)}


def run(kube: Kube, ns: str, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Apply the model in ``ns`` (restricted, existing), measure, return the figures."""
    container = operator_container(kube)
    interval = interval_from_container(container)
    window = promql_window_from_container(container)
    assert interval is not None, "the operator container sets no autoscale interval"
    figures: dict[str, Any] = {"interval_s": interval, "promql_window_s": window}
    doc = rp.smollm2_doc(MD, minReplicas=1, maxReplicas=1, scaleUpDelaySeconds=0,
                         scaleDownDelaySeconds=600)
    slo_s = doc["spec"]["slo"]["latencyP95Ms"] / 1000.0
    figures["slo_s"] = slo_s
    started = time.monotonic()
    rp.apply(kube, ns, doc)
    rp.wait_ready(kube, ns, MD, 1, 240)
    url = rp.service_url(kube, ns, MD)
    wait_until(lambda: asyncio.run(rp.run_closed(url, 1, 0.1, max_tokens=4)).ok, 120,
               "a first answer through the ClusterIP", interval=1.0)
    figures["apply_to_first_answer_s"] = round(time.monotonic() - started, 1)
    # One replica's speed: one user back to back (the replica serves one request at a time),
    # 1 / the median answer time. Measured with maxReplicas 1: this load is one a good policy
    # scales up for (measured: the pod added 11-17 s before the step when max was 2 already).
    one, cpu_one = _cpu_phase(url, clients=1, seconds=ONE_S)
    assert one.ok and not one.errors, f"one replica: {one.errors}"
    mu1 = 1.0 / rp.percentile(one.latencies_s, 0.5)
    figures.update(mu1=round(mu1, 2), one_p50_s=round(one.p50(), 2), cpu_one=cpu_one)
    # Idle (maxReplicas still 1) until the operator's metrics window no longer holds that
    # load, then maxReplicas 2, one decision more, and the step from idle: the pod the step
    # needs can only come from the step. (A base load first was tried: 0.2 and 0.3 x one
    # replica's speed; the operator image's policy answered the start of any traffic with
    # SLOConflictsWithMaxReplicas and added the pod 6-8 s before the step in 9 of 9 runs,
    # so the step was never measured; docs/benchmarks-realnode.md.)
    time.sleep(window + interval)
    doc["spec"]["scaling"]["maxReplicas"] = PODS
    rp.apply(kube, ns, doc)
    time.sleep(interval + 1.0)
    first = {p["metadata"]["name"] for p in rp.pods(kube, ns, MD)}
    assert len(first) == 1, f"pods while idle at maxReplicas {PODS}: {sorted(first)}"
    say(f"one replica: {mu1:.2f} answers/s (1 / median answer time, {one.ok} in turn); idle, "
        f"then a step to {STEP} x = {STEP * mu1:.2f} req/s for {STEP_S:.0f} s (SLO p95 "
        f"{slo_s:.1f} s, decision interval {interval:g} s)")

    samples: list[Sample] = []
    wall_minus_mono = time.time() - time.monotonic()
    with Watcher(kube, ns, first) as watch:
        step = time.monotonic()
        load = asyncio.run(rp.run_load(url, STEP * mu1, STEP_S, max_tokens=MAX_TOKENS,
                                       max_in_flight=64, window_s=STEP_S + 120,
                                       samples=samples))
    end = step + STEP_S
    figures.update(sent=load.sent, answered=load.ok, errors=dict(load.errors))
    new = [p for p in rp.pods(kube, ns, MD) if p["metadata"]["name"] not in first]
    figures["replicas_desired"] = md_status(kube, ns, MD).get("replicas", {}).get("desired")
    scaled = condition(md_status(kube, ns, MD), "Scaled")
    figures["scaled"] = f"{scaled.get('reason')}: {scaled.get('message', '')[:160]}"
    lam = load.sent / STEP_S  # every request sent, answered or not
    windows = window_p95s(samples, step, end)
    figures.update(offered=round(lam, 2), step_x=round(lam / mu1, 2),
                   worst_window_p95_s=round(max(w[1] for w in windows), 2) if windows else None)
    c = recovery_s(samples, step, end, slo_s)
    figures["recovery_s"] = None if c is None else round(c, 1)
    if new:
        pod = new[0]
        created = stamp(pod["metadata"]["creationTimestamp"])
        ready = ready_at(pod)
        figures["decision_s"] = round(created - (step + wall_minus_mono), 1)
        figures["startup_s"] = None if ready is None else round(ready - created, 1)
    figures["why_added"] = watch.why
    figures["seen_ready_s"] = None if watch.ready is None else round(watch.ready - step, 1)
    figures["seen_serving_s"] = None if watch.serving is None else round(watch.serving - step, 1)
    if watch.serving is not None:
        figures["backlog"] = outstanding(samples, watch.serving)
    if len(rp.ready_pods(kube, ns, MD)) >= PODS:
        two, cpu_two = _cpu_phase(url, clients=4 * PODS, seconds=10.0)
        steady = steady_p95_s(lam, two.requests_per_s)
        figures.update(mu2=round(two.requests_per_s, 2), cpu_two=cpu_two,
                       two_errors=dict(two.errors),
                       steady_p95_s=round(steady, 2) if math.isfinite(steady) else None)
        if "backlog" in figures:
            allowance = backlog_allowance_s(figures["backlog"], two.requests_per_s, lam)
            figures["allowance_s"] = round(allowance, 1) if math.isfinite(allowance) else None
            if figures.get("startup_s") is not None and math.isfinite(allowance):
                figures["bound_s"] = round(figures["startup_s"] + figures["interval_s"]
                                           + allowance + STAMP_RESOLUTION_S, 1)
    say(summary(figures))
    return figures


def summary(f: dict[str, Any]) -> str:
    return (f"step {f.get('offered')} req/s ({f.get('step_x')} x one replica's "
            f"{f.get('mu1')}/s); errors {f.get('errors') or 'none'}; decision "
            f"{f.get('decision_s')} s after the step, start-up (a) {f.get('startup_s')} s, "
            f"interval (b) {f.get('interval_s')} s, backlog {f.get('backlog')} at first "
            f"service ({f.get('seen_serving_s')} s), 2 pods {f.get('mu2')}/s (steady p95 "
            f"{f.get('steady_p95_s')} s), allowance "
            f"{f.get('allowance_s')} s; p95 back under {f.get('slo_s')} s (c) "
            f"{f.get('recovery_s')} s after the step (worst window {f.get('worst_window_p95_s')}"
            f" s), bound {f.get('bound_s')} s; pods' CPU {f.get('cpu_two')}")
