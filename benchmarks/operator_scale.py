"""Operator at scale on the real local control plane: 1,000 ModelDeployments.

First, in the same run and on the same cluster, the **direct baseline**: the same children
the operator renders (one Deployment and one Service per ModelDeployment, from the pure
``decide``, ownerReferences stripped) server-side applied straight away, 32 in flight, in a
namespace of their own (deleted, and waited for, before the operator starts); "direct" is
first apply -> every Deployment and Service listed (polled every 2 s by this process's own
paginated LISTs, as is the operator's progress below: ``kubectl`` used ~1.5 s of CPU per poll
of 1,000 objects, on the cores the API server needs).

Second, **minimal writes**: what any operator must at least write for the same result, sent
by this client with no operator (per ModelDeployment: its create, its two children applied,
one status patch; no Events, no second look), so the ratio it gives is the floor the
operator's ratio can reach on this API server.

Then, with the operator running as a subprocess (`python -m wattserve.controller`):

* time from the first create until every ModelDeployment is Placed=True with its Deployment
  and Service created;
* the operator's peak RSS (VmHWM from /proc);
* API requests per reconcile: the reconciler's own requests (its
  ``wattserve_operator_api_requests_total`` counter) and the API server's
  ``apiserver_request_total`` for the wattserve resources (modeldeployments incl. status,
  servingpools; the benchmark's own creates subtracted);
* API requests per minute when idle (nothing changes) for the same two counts;
* a restart with everything in place: time to resync and the writes it makes.

Pods go to a benchmark ServingPool whose nodeSelector matches no node, so the scheduler
leaves them Pending (the simulated nodes could hold only a dozen of them anyway); every
ModelDeployment therefore also reports Degraded=Unschedulable, as in a full cluster.

    python benchmarks/operator_scale.py                      # dev cluster from KUBECONFIG
    python benchmarks/operator_scale.py --count 200 --idle-seconds 30
    python benchmarks/operator_scale.py --markdown docs/benchmarks-operator.md
    python benchmarks/operator_scale.py --profile /tmp/op.raw   # + where its CPU goes (py-spy)
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import kopf
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from wattserve import contract  # noqa: E402
from wattserve.api import parse_serving_pool  # noqa: E402
from wattserve.controller.kubeapi import ApiError, KubeApi  # noqa: E402
from wattserve.devcluster.processes import free_port  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from cpu_profile import Recorder  # noqa: E402

NAMESPACE = "wattserve-bench"
DIRECT_NAMESPACE = "wattserve-bench-direct"
MINIMAL_NAMESPACE = "wattserve-bench-minimal"
POOL = "bench-unschedulable"
MD_PATH = f"/apis/wattserve.dev/v1alpha1/namespaces/{NAMESPACE}/modeldeployments"


def _say(message: str) -> None:
    """Progress on stderr, with the wall-clock time (to line up with other recordings)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def _kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True,
                          check=True).stdout


def _drop_namespace(namespace: str) -> None:
    subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=true",
                    "--timeout=900s"], capture_output=True, check=False)


def _fresh_namespace(namespace: str) -> None:
    _drop_namespace(namespace)
    _kubectl("create", "namespace", namespace)


def _md(i: int) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "models" / "smollm2-135m.yaml").read_text())
    doc["metadata"] = {"name": f"bench-{i:04d}", "namespace": NAMESPACE}
    doc["spec"]["placement"] = {"pool": POOL}
    doc["spec"]["expectedLoad"]["requestsPerSecond"] = "0.1"  # one replica each
    return dict(doc)


def _pool() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "pools.yaml").read_text()) if d]
    pool = copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == "cpu-general"))
    pool["metadata"] = {"name": POOL}
    pool["spec"]["nodeSelector"] = {"wattserve.dev/pool": POOL}  # no node has it
    pool["spec"]["maxNodes"] = 100_000
    # Expensive: if a run is interrupted and the pool left behind, no unpinned
    # ModelDeployment will ever prefer it (the benchmark's are pinned to it).
    pool["spec"]["pricing"]["usdPerNodeHour"] = "1000"
    return dict(pool)


class OperatorProcess:
    def __init__(self, log: Path, workers: int, source: Path = REPO / "operator") -> None:
        self.workers = workers
        self.source = source  # the operator package's directory (another revision's too)
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "wattserve.controller", "--namespace", NAMESPACE,
               "--standalone", "--metrics-port", str(self.metrics_port),
               "--health-port", str(self.health_port), "--workers", str(self.workers)]
        env = dict(os.environ, PYTHONPATH=str(self.source))
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz",
                                            timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"operator did not become healthy; see {self.log}")

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as resp:
            text = resp.read().decode()
        return sum(float(m.group(1)) for m in re.finditer(
            rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))

    def by_label(self, name: str) -> dict[str, float] | None:
        """A labelled counter's values by its one label (None: the operator has no such
        counter, e.g. an older version)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as resp:
            text = resp.read().decode()
        if not any(f"# HELP {family} " in text
                   for family in (name, name.removesuffix("_total"))):
            return None
        out: dict[str, float] = {}
        for m in re.finditer(rf'^{re.escape(name)}{{[a-z]+="([^"]*)"}} ([0-9.e+]+)$', text,
                             re.M):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
        return out

    def writes(self) -> float:
        """Reconciler requests other than reads (list/get)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as resp:
            text = resp.read().decode()
        return sum(float(m.group(2)) for m in re.finditer(
            r'^wattserve_operator_api_requests_total\{verb="([a-z-]+)"\} ([0-9.e+]+)$',
            text, re.M) if m.group(1) not in ("list", "get"))

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _apiserver_wattserve_requests() -> float:
    text = _kubectl("get", "--raw", "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and re.search(
                r'resource="(modeldeployments|servingpools)"', line):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _create_all(api: KubeApi, count: int) -> None:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await api.request("POST", MD_PATH, body=_md(i), verb="bench-create")

    await asyncio.gather(*(one(i) for i in range(count)))


def _direct_children(count: int) -> list[dict[str, Any]]:
    """What the operator applies for each benchmark ModelDeployment (its pure ``decide``),
    in the baseline's namespace and without ownerReferences (no owner exists there)."""
    from wattserve.reconcile.decide import Observed, decide
    from wattserve.render import RenderSettings

    pool = parse_serving_pool(_pool())
    out: list[dict[str, Any]] = []
    for i in range(count):
        md = _md(i)
        md["metadata"] |= {"uid": f"00000000-0000-0000-0000-{i:012d}", "generation": 1}
        outcome = decide(Observed(body=md, pools=[pool]), RenderSettings(), "2026-01-01T00:00:00Z")
        for obj in outcome.apply:
            child = copy.deepcopy(dict(obj))
            child["metadata"]["namespace"] = DIRECT_NAMESPACE
            child["metadata"].pop("ownerReferences", None)
            out.append(child)
    return out


async def minimal_writes(api: KubeApi, count: int) -> dict[str, Any]:
    """What any operator must at least write, issued by this client with no operator: per
    ModelDeployment its create, then its Deployment and Service (server-side applied, owned
    by it) and one status patch (the pure ``decide``'s), 32 ModelDeployments in flight,
    in a namespace of its own that no operator watches. No Events, no second reconcile."""
    from wattserve.reconcile.decide import Observed, decide
    from wattserve.render import RenderSettings

    _fresh_namespace(MINIMAL_NAMESPACE)
    pool = parse_serving_pool(_pool())
    path = MD_PATH.replace(f"/namespaces/{NAMESPACE}/", f"/namespaces/{MINIMAL_NAMESPACE}/")
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        md = _md(i)
        md["metadata"]["namespace"] = MINIMAL_NAMESPACE
        async with sem:
            live = await api.request("POST", path, body=md, verb="bench-create")
            outcome = decide(Observed(body=live, pools=[pool]), RenderSettings(),
                             "2026-01-01T00:00:00Z")
            await asyncio.gather(*(api.apply(obj) for obj in outcome.apply))
            if outcome.status_patch is not None:
                await api.patch_status(MINIMAL_NAMESPACE, md["metadata"]["name"],
                                       outcome.status_patch)

    _say(f"minimal writes: {count} ModelDeployments")
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    out = {"minimal_seconds": time.monotonic() - t0}
    _say(f"minimal writes: answered after {out['minimal_seconds']:.1f} s")
    _drop_namespace(MINIMAL_NAMESPACE)
    return out


async def _children_listed(api: KubeApi, namespace: str) -> int:
    """How many ModelDeployments' worth of children exist: min(Deployments, Services), by
    the benchmark's own paginated LISTs (kubectl's JSON handling cost ~1.5 s of CPU per poll
    at 1,000, on the cores the API server needs)."""
    deps = await api.list_all("apps/v1", "Deployment", namespace)
    svcs = await api.list_all("v1", "Service", namespace)
    return min(len(deps), len(svcs))


async def direct_baseline(api: KubeApi, count: int) -> dict[str, Any]:
    """The floor: the same children applied directly (no operator, no status, no Events)."""
    children = _direct_children(count)
    _fresh_namespace(DIRECT_NAMESPACE)
    sem = asyncio.Semaphore(32)

    async def one(obj: dict[str, Any]) -> None:
        async with sem:
            await api.apply(obj)

    _say(f"direct baseline: applying {len(children)} children")
    t0 = time.monotonic()
    await asyncio.gather(*(one(obj) for obj in children))
    applied = time.monotonic() - t0
    _say(f"direct baseline: applies answered after {applied:.1f} s")
    while await _children_listed(api, DIRECT_NAMESPACE) < count:
        if time.monotonic() - t0 > 600:
            raise RuntimeError("direct baseline: timeout")
        await asyncio.sleep(2.0)
    out = {"direct_objects": len(children), "direct_apply_seconds": applied,
           "direct_seconds": time.monotonic() - t0}
    t1 = time.monotonic()
    _drop_namespace(DIRECT_NAMESPACE)
    out["direct_cleanup_seconds"] = time.monotonic() - t1
    return out


async def _placed(api: KubeApi) -> int:
    mds = await api.list_all(contract.API_VERSION, "ModelDeployment", NAMESPACE)
    return sum(1 for md in mds if any(
        c.get("type") == "Placed" and c.get("status") == "True"
        for c in (md.get("status") or {}).get("conditions") or ()))


async def _wait_quiet(api: KubeApi, op: OperatorProcess, count: int, quiet: float = 10.0,
                      timeout: float = 600.0) -> None:
    """Until every pod exists, every Event is posted and the operator has not reconciled
    for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        pods = len(await api.list_all("v1", "Pod", NAMESPACE))
        now = op.metric("wattserve_operator_reconcile_total")
        if now != last or pods < count or op.metric("wattserve_operator_events_queued"):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        await asyncio.sleep(2.0)
    raise RuntimeError("the operator never went quiet")


async def run(count: int, idle_seconds: float, log: Path, workers: int,
              profile: Path | None = None) -> dict[str, Any]:
    _kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    _kubectl("apply", "-f", str(REPO / "examples" / "pools.yaml"))
    _kubectl("apply", "-f", "-", stdin=yaml.safe_dump(_pool()))
    subprocess.run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=true",
                    "--timeout=300s"], capture_output=True, check=False)
    api = KubeApi(lambda: kopf.login_with_kubeconfig(settings=kopf.OperatorSettings()))
    out: dict[str, Any] = {"count": count, "workers": workers,
                           "load_average_direct": os.getloadavg()[0]}
    out |= await direct_baseline(api, count)
    out |= await minimal_writes(api, count)
    _kubectl("create", "namespace", NAMESPACE)
    op = OperatorProcess(log, workers)
    op.start()
    try:
        time.sleep(2)
        server_before = _apiserver_wattserve_requests()
        ops_before = op.metric("wattserve_operator_api_requests_total")
        rec_before = op.metric("wattserve_operator_reconcile_total")
        triggers_before = op.by_label("wattserve_operator_reconcile_triggers_total")
        echoes_before = op.by_label("wattserve_operator_own_echoes_total")
        passes_before = op.by_label("wattserve_operator_fleet_passes_total")
        cpu_before = op.cpu_seconds()
        out["load_average"] = os.getloadavg()[0]
        recorder = Recorder(op.pid, profile) if profile is not None else None
        _say(f"operator: creating {count} ModelDeployments")
        t0 = time.monotonic()
        await _create_all(api, count)
        out["create_seconds"] = time.monotonic() - t0
        while True:
            # Placed is written after the children are applied; they are counted once then
            # (and again until they all exist).
            placed = await _placed(api)
            children = await _children_listed(api, NAMESPACE) if placed >= count else 0
            if placed >= count and children >= count:
                break
            if time.monotonic() - t0 > 600:
                raise RuntimeError(f"timeout: {placed} placed, {children} with children")
            await asyncio.sleep(2.0)
        out["all_placed_seconds"] = time.monotonic() - t0
        _say(f"operator: all Placed after {out['all_placed_seconds']:.1f} s; settling")
        out["reconciles_at_placed"] = op.metric("wattserve_operator_reconcile_total") - rec_before
        out["events_queued_at_placed"] = op.metric("wattserve_operator_events_queued")
        await _wait_quiet(api, op, count)  # pods exist, Degraded=Unschedulable reported
        out["settled_seconds"] = time.monotonic() - t0
        out["reconciles"] = op.metric("wattserve_operator_reconcile_total") - rec_before
        out["triggers"] = _delta(op.by_label("wattserve_operator_reconcile_triggers_total"),
                                 triggers_before)
        out["own_echoes"] = _delta(op.by_label("wattserve_operator_own_echoes_total"),
                                   echoes_before)
        out["fleet_passes"] = _delta(op.by_label("wattserve_operator_fleet_passes_total"),
                                     passes_before)
        out["operator_requests"] = op.metric("wattserve_operator_api_requests_total") - ops_before
        out["server_requests"] = _apiserver_wattserve_requests() - server_before - count
        out["peak_rss_mb"] = op.peak_rss_mb()
        out["operator_cpu_seconds"] = op.cpu_seconds() - cpu_before
        if recorder is not None:
            out["profile"] = recorder.stop()

        _say(f"operator: settled after {out['settled_seconds']:.1f} s; idle for "
             f"{idle_seconds:.0f} s")
        # Idle: nothing changes for idle_seconds.
        ops_idle = op.metric("wattserve_operator_api_requests_total")
        server_idle = _apiserver_wattserve_requests()
        rec_idle = op.metric("wattserve_operator_reconcile_total")
        time.sleep(idle_seconds)
        minutes = idle_seconds / 60
        out["idle_seconds"] = idle_seconds
        out["idle_operator_requests_per_min"] = (
            op.metric("wattserve_operator_api_requests_total") - ops_idle) / minutes
        out["idle_server_requests_per_min"] = (_apiserver_wattserve_requests()
                                               - server_idle) / minutes
        out["idle_reconciles"] = op.metric("wattserve_operator_reconcile_total") - rec_idle
        out["peak_rss_mb"] = max(out["peak_rss_mb"], op.peak_rss_mb())

        _say("operator: restart with everything in place")
        # Restart with everything in place: resume costs reads, not writes.
        op.stop()
        op = OperatorProcess(log, workers)
        t1 = time.monotonic()
        op.start()
        while op.metric("wattserve_operator_reconcile_total") < count:
            if time.monotonic() - t1 > 300:
                break
            time.sleep(0.5)
        out["restart_resync_seconds"] = time.monotonic() - t1
        time.sleep(3)
        out["restart_requests"] = op.metric("wattserve_operator_api_requests_total")
        out["restart_writes"] = op.writes()
        out["restart_peak_rss_mb"] = op.peak_rss_mb()
    finally:
        op.stop()
        await api.close()
        subprocess.run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=false"],
                       capture_output=True, check=False)
        subprocess.run(["kubectl", "delete", "servingpool", POOL, "--wait=false"],
                       capture_output=True, check=False)
    return out


def _delta(after: dict[str, float] | None,
           before: dict[str, float] | None) -> dict[str, float] | None:
    if after is None or before is None:
        return None
    return {k: v - before.get(k, 0.0) for k, v in sorted(after.items())
            if v - before.get(k, 0.0)}


def _split(counts: dict[str, float] | None, n: int) -> str:
    if counts is None:
        return "not counted (no such metric)"
    return ", ".join(f"{k} {v:.0f} ({v / n:.2f})" for k, v in counts.items()) or "none"


def markdown(r: dict[str, Any]) -> str:
    n = r["count"]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("ModelDeployments", f"{n}", ""),
        ("create all (benchmark client, 32 in flight)", f"{r['create_seconds']:.1f} s", ""),
        ("direct baseline: first apply → all Deployments + Services exist "
         f"({r['direct_objects']} server-side applies, 32 in flight, no operator)",
         f"{r['direct_seconds']:.1f} s", f"applies done after {r['direct_apply_seconds']:.1f} s"),
        ("minimal writes, no operator: create + 2 applies + 1 status patch per "
         "ModelDeployment, 32 in flight", f"{r['minimal_seconds']:.1f} s",
         f"**{r['minimal_seconds'] / r['direct_apply_seconds']:.2f}×** the direct "
         "baseline's applies (both: every write answered): the floor of any operator here"),
        ("first create → all Placed with Deployment + Service",
         f"{r['all_placed_seconds']:.1f} s", ""),
        ("**operator / direct**", f"**{r['all_placed_seconds'] / r['direct_seconds']:.2f}×**",
         "target ≤ 1.3×"),
        ("Events still queued when all were Placed", f"{r['events_queued_at_placed']:.0f}",
         "posted after, at most 2 in flight (controller/events.py); all posted by settled"),
        ("reconciles until all Placed", f"{r['reconciles_at_placed']:.0f}",
         f"{r['reconciles_at_placed'] / n:.2f} per ModelDeployment (target 1)"),
        ("operator peak RSS", f"{r['peak_rss_mb']:.0f} MB", "target ≤ 150 MB"),
        ("operator CPU time (create → settled)", f"{r['operator_cpu_seconds']:.1f} s",
         f"{1000 * r['operator_cpu_seconds'] / n:.1f} ms per ModelDeployment"),
        ("machine load average (1 min) at the start: direct / operator",
         f"{r['load_average_direct']:.1f} / {r['load_average']:.1f}",
         f"{os.cpu_count()} CPUs, shared with other work"),
        ("first create → settled (all pods exist, all Events posted, operator quiet 10 s)",
         f"{r['settled_seconds']:.1f} s", ""),
        ("reconciles (create → settled)", f"{r['reconciles']:.0f}",
         f"{r['reconciles'] / n:.2f} per ModelDeployment"),
        ("reconciles by what queued them (per ModelDeployment)",
         _split(r.get("triggers"), n),
         "created / changed / status-by-others = the ModelDeployment's own events; "
         "child, pod = observations"),
        ("fleet assignments by kind (per ModelDeployment)", _split(r.get("fleet_passes"), n),
         "full = every ModelDeployment placed afresh (O(N) each)"),
        ("watch events recognised as our own writes (queued nothing)",
         _split(r.get("own_echoes"), n), "an echo never queues a reconcile"),
        ("reconciler API requests", f"{r['operator_requests']:.0f}",
         f"{r['operator_requests'] / n:.2f} per ModelDeployment, "
         f"{r['operator_requests'] / max(1, r['reconciles']):.2f} per reconcile"),
        ("API server requests on wattserve resources (benchmark creates excluded)",
         f"{r['server_requests']:.0f}", f"{r['server_requests'] / n:.2f} per ModelDeployment"),
        (f"idle: reconciler requests per minute ({r['idle_seconds']:.0f} s)",
         f"{r['idle_operator_requests_per_min']:.1f}", "near zero"),
        ("idle: API server requests/min on wattserve resources",
         f"{r['idle_server_requests_per_min']:.1f}", "near zero"),
        ("idle: reconciles (in-memory, no writes)", f"{r['idle_reconciles']:.0f}", ""),
        ("restart with all in place: resync of every ModelDeployment",
         f"{r['restart_resync_seconds']:.1f} s", ""),
        ("restart: reconciler requests (the initial paginated LISTs)",
         f"{r['restart_requests']:.0f}", ""),
        ("restart: reconciler writes", f"{r['restart_writes']:.0f}", "0 expected"),
        ("restart: peak RSS", f"{r['restart_peak_rss_mb']:.0f} MB", "target ≤ 150 MB"),
    ]
    lines = [f"Measured {when} with `python benchmarks/operator_scale.py --count {n} "
             f"--workers {r['workers']}`.", "",
             "| figure | value | note / target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--idle-seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=16, help="operator --workers")
    p.add_argument("--log", default="/tmp/wattserve-operator-bench.log")
    p.add_argument("--markdown", help="also write the results table to this file")
    p.add_argument("--profile", metavar="FILE.raw",
                   help="sample the operator with py-spy from the first create until settled "
                        "(raw stacks to FILE) and add where its CPU goes, by component")
    args = p.parse_args(argv)
    if not os.environ.get("KUBECONFIG"):
        print("set KUBECONFIG (e.g. eval \"$(wattserve dev-cluster env)\")", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(run(args.count, args.idle_seconds, Path(args.log),
                                 args.workers, Path(args.profile) if args.profile else None))
    except (ApiError, subprocess.CalledProcessError, RuntimeError) as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    table = markdown(result)
    if result.get("profile"):
        table += "\nWhere the operator's CPU went (create → settled, py-spy):\n\n"
        table += result["profile"]
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
