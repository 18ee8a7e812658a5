"""Real pods on the dev cluster's real node, for `make demo` and benchmarks/realpods_scale.py.

The path is the one a user takes (issue 11): `wattserve dev-cluster up` with the real node,
`helm install` the chart (the operator as the chart's pod), `kubectl apply` SmolLM2 from its
model image, load through the Service's ClusterIP, and a real Prometheus (Debian's binary on
the host, listening on the real node's address so the operator pod reaches it) that finds the
serving pods by Kubernetes service discovery with the chart PodMonitor's selection and
relabelling.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import yaml
from wattserve.devcluster.cni import NODE_IP
from wattserve.devcluster.commands import SERVICE_CIDR
from wattserve.devcluster.components import binary_paths
from wattserve.devcluster.state import ClusterState
from wattserve.render.meta import selector_labels

from e2e.harness.prometheus import LocalPrometheus, _duration
from e2e.harness.stack import Kube, wait_until

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "wattserve"
POOL_VALUES = CHART / "examples" / "pools-values.yaml"
SMOLLM2 = REPO / "examples" / "models" / "smollm2-135m-oci.yaml"
MODEL_NAME = "smollm2-135m-instruct"
RELEASE, RELEASE_NS = "wattserve", "wattserve-system"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
MD_LABEL = "wattserve.dev/model-deployment"  # what the chart's PodMonitor selects on
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# Makes SmolLM2 write until max_tokens: each request costs a predictable amount of decode.
LONG_PROMPT = "Count from one to one hundred in words, separated by commas."


def cli(state: Path, *args: str, capture: bool = False) -> str:
    proc = subprocess.run([sys.executable, "-m", "wattserve.cli.main", "dev-cluster",
                           "--state-dir", str(state), *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return (proc.stdout or "").strip()


def tools_dir(state: Path) -> Path:
    """kubectl and helm (built by `dev-cluster build`) linked into one directory."""
    bins = binary_paths()
    out = state / "bin"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("kubectl", "helm"):
        link = out / name
        if not link.exists():
            link.symlink_to(bins[name])
    return out


def cluster_up(state: Path, real_node: bool = True) -> tuple[Kube, bool]:
    """`dev-cluster up`; the kubectl/helm handle and whether the real node runs."""
    cli(state / "cluster", "up", *(() if real_node else ("--no-real-node",)))
    kubeconfig = Path(cli(state / "cluster", "kubeconfig", capture=True))
    st = ClusterState.load(state / "cluster")
    return Kube(kubeconfig, tools_dir(state)), bool(st is not None and st.real_node)


def cluster_down(state: Path) -> None:
    if (state / "cluster").exists():
        subprocess.run([sys.executable, "-m", "wattserve.cli.main", "dev-cluster",
                        "--state-dir", str(state / "cluster"), "down"], check=False)


def restricted_namespace(kube: Kube, name: str) -> None:
    kube.kubectl("create", "namespace", name, check=False)
    kube.kubectl("label", "--overwrite", "namespace", name, RESTRICTED)


def install_chart(kube: Kube, workdir: Path, values: dict[str, Any]) -> float:
    """`helm upgrade --install` with the example pools and ``values``; seconds to Ready."""
    restricted_namespace(kube, RELEASE_NS)
    extra = workdir / "values.yaml"
    extra.write_text(yaml.safe_dump(values))
    started = time.monotonic()
    kube.helm("upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NS, "-f",
              str(POOL_VALUES), "-f", str(extra), "--wait", "--timeout", "240s", timeout=300)
    return time.monotonic() - started


def chart_values(prometheus_url: str, interval_s: int = 2) -> dict[str, Any]:
    """The operator reads the host Prometheus; short windows so the loop reacts in seconds."""
    return {"prometheus": {"url": prometheus_url},
            "autoscaler": {"intervalSeconds": interval_s},
            "operator": {"extraArgs": ["--promql-window", "10s", "--scrape-interval", "1"]}}


def smollm2_doc(name: str = "smollm2-135m", **scaling: int) -> dict[str, Any]:
    """examples/models/smollm2-135m-oci.yaml, renamed, with ``scaling`` overrides."""
    doc: dict[str, Any] = copy.deepcopy(yaml.safe_load(SMOLLM2.read_text()))
    doc["metadata"]["name"] = name
    doc["spec"]["scaling"].update(scaling)
    return doc


def apply(kube: Kube, namespace: str, doc: dict[str, Any]) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def pods(kube: Kube, namespace: str, md: str) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in selector_labels(md).items())
    items: list[dict[str, Any]] = kube.get("pods", "-n", namespace, "-l", selector)["items"]
    return items


def is_ready(pod: dict[str, Any]) -> bool:
    return pod.get("metadata", {}).get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", []))


def ready_pods(kube: Kube, namespace: str, md: str) -> list[dict[str, Any]]:
    return [p for p in pods(kube, namespace, md) if is_ready(p)]


def wait_ready(kube: Kube, namespace: str, md: str, count: int, timeout: float) -> float:
    """Seconds until ``count`` serving pods are Ready (and no more pods than that exist)."""
    started = time.monotonic()
    wait_until(lambda: len(ready_pods(kube, namespace, md)) >= count, timeout,
               f"{count} Ready serving pod(s) of {md}", interval=0.5)
    return time.monotonic() - started


def service_url(kube: Kube, namespace: str, name: str) -> str:
    svc = kube.get("service", name, "-n", namespace)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


class KubePrometheus(LocalPrometheus):
    """LocalPrometheus whose one job finds serving pods through the Kubernetes API, as the
    chart's PodMonitor does: pods with the wattserve.dev/model-deployment label, in every
    namespace, their port named ``http`` (podMonitor.portName), /metrics, honor_labels, and
    the node name relabelled into ``node`` (plus the namespace/pod/container labels that the
    Prometheus Operator adds to every PodMonitor target)."""

    def __init__(self, workdir: Path, kubeconfig: Path, scrape_interval: float = 1.0,
                 host: str = NODE_IP, port_name: str = "http") -> None:
        super().__init__(workdir, scrape_interval=scrape_interval, host=host)
        self.kubeconfig = kubeconfig
        self.port_name = port_name

    def _write_config(self) -> Path:
        interval = _duration(self.scrape_interval)
        job = {
            "job_name": "wattserve-serving",
            "honor_labels": True,
            "metrics_path": "/metrics",
            "scrape_interval": interval,
            "scrape_timeout": _duration(max(0.5, self.scrape_interval * 0.8)),
            "kubernetes_sd_configs": [{"role": "pod",
                                       "kubeconfig_file": str(self.kubeconfig)}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_labelpresent_"
                                   + _label_name(MD_LABEL)],
                 "regex": "true", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"],
                 "regex": self.port_name, "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_phase"],
                 "regex": "Pending|Succeeded|Failed", "action": "drop"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"],
                 "target_label": "container"},
                # the chart's one relabeling:
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            ],
        }
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
                  "scrape_configs": [job]}
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


def _label_name(label: str) -> str:
    """A Kubernetes label as Prometheus' service discovery spells it in meta labels."""
    return "".join(ch if ch.isalnum() else "_" for ch in label)


def _allowed(url: str) -> bool:
    """Load only goes to loopback or to this dev cluster's Service addresses."""
    try:
        address = ipaddress.ip_address(urlparse(url).hostname or "")
    except ValueError:
        return False
    return address in LOOPBACK or address in ipaddress.ip_network(SERVICE_CIDR)


@dataclass
class Window:
    """Requests that finished in one time window."""

    start_s: float
    ok: int = 0
    errors: int = 0
    tokens: int = 0
    latencies_s: list[float] = field(default_factory=list)

    def p95(self) -> float:
        return percentile(self.latencies_s, 0.95)


@dataclass
class Load:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    latencies_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    windows: list[Window] = field(default_factory=list)

    def p95(self) -> float:
        return percentile(self.latencies_s, 0.95)

    def p50(self) -> float:
        return percentile(self.latencies_s, 0.5)

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.duration_s if self.duration_s else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_load(url: str, rate: float, duration_s: float, *, max_tokens: int = 32,
                   max_in_flight: int = 24, timeout_s: float = 60.0, window_s: float = 10.0,
                   on_window: Callable[[Window], None] | None = None,
                   samples: list[tuple[float, float]] | None = None) -> Load:
    """Open-loop arrivals at ``rate``/s for ``duration_s`` (bounded in flight and in time);
    latency = request sent -> whole answer, counted in the window the request ends in;
    ``samples`` gets (time.monotonic() when sent, latency) of every answered request."""
    if not _allowed(url):
        raise ValueError(f"load only targets loopback or the dev cluster's Services: {url}")
    result = Load()
    gate = asyncio.Semaphore(max_in_flight)
    body = {"model": MODEL_NAME, "max_tokens": max_tokens, "temperature": 0.0,
            "messages": [{"role": "user", "content": LONG_PROMPT}]}
    began = time.monotonic()
    result.windows.append(Window(0.0))

    def window(now: float) -> Window:
        while now - began >= result.windows[-1].start_s + window_s:
            done = result.windows[-1]
            if on_window is not None:
                on_window(done)
            result.windows.append(Window(done.start_s + window_s))
        return result.windows[-1]

    def fail(kind: str) -> None:
        result.errors[kind] = result.errors.get(kind, 0) + 1
        window(time.monotonic()).errors += 1

    async def one(client: httpx.AsyncClient) -> None:
        async with gate:
            start = time.monotonic()
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                fail(type(exc).__name__)
                return
            if response.status_code != 200:
                fail(str(response.status_code))
                return
            end = time.monotonic()
            tokens = int(response.json().get("usage", {}).get("completion_tokens", 0))
            result.ok += 1
            result.tokens += tokens
            result.latencies_s.append(end - start)
            if samples is not None:
                samples.append((start, end - start))
            current = window(end)
            current.ok += 1
            current.tokens += tokens
            current.latencies_s.append(end - start)

    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        tasks: list[asyncio.Task[None]] = []
        while time.monotonic() - began < duration_s:
            tasks.append(asyncio.ensure_future(one(client)))
            result.sent += 1
            window(time.monotonic())
            await asyncio.sleep(1.0 / rate)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=timeout_s + 10)
    result.duration_s = time.monotonic() - began
    if on_window is not None:
        on_window(result.windows[-1])
    return result


async def run_closed(url: str, clients: int, duration_s: float, *,
                     max_tokens: int = 32, timeout_s: float = 60.0) -> Load:
    """``clients`` users each sending the next request when the last one ends: the most the
    Service delivers (saturation throughput), one new connection per request."""
    if not _allowed(url):
        raise ValueError(f"load only targets loopback or the dev cluster's Services: {url}")
    result = Load()
    body = {"model": MODEL_NAME, "max_tokens": max_tokens, "temperature": 0.0,
            "messages": [{"role": "user", "content": LONG_PROMPT}]}
    began = time.monotonic()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)

    async def user(client: httpx.AsyncClient) -> None:
        while time.monotonic() - began < duration_s:
            start = time.monotonic()
            result.sent += 1
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
                continue
            if response.status_code != 200:
                code = str(response.status_code)
                result.errors[code] = result.errors.get(code, 0) + 1
                await asyncio.sleep(0.2)
                continue
            result.ok += 1
            result.tokens += int(response.json().get("usage", {}).get("completion_tokens", 0))
            result.latencies_s.append(time.monotonic() - start)

    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        await asyncio.wait_for(asyncio.gather(*(user(client) for _ in range(clients))),
                               timeout=duration_s + timeout_s + 10)
    result.duration_s = time.monotonic() - began
    return result
