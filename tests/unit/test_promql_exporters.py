"""The energy PromQL templates against a real Prometheus scraping the pinned exporters' shape.

Kepler v0.11.4 and dcgm-exporter 4.5.3-4.8.2 cannot run here (no RAPL counters, no GPU), so
their exposition comes from fixture files written from their upstream sources
(tests/fixtures/exposition/README.md). Everything else is real: Debian's Prometheus scrapes
them the way the exporters' charts do (``honorLabels: false``, so dcgm-exporter's own
``pod``/``namespace`` become ``exported_pod``/``exported_namespace``), and the serving pods
the way wattserve's PodMonitor does (``honorLabels: true`` plus the ``pod`` target label).
The counters grow at value / COUNTER_SECONDS per second, so every expected watt figure is
computed from the fixture.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from wattserve import contract
from wattserve.autoscale.observe import collect
from wattserve.autoscale.prometheus import PrometheusClient
from wattserve.autoscale.promql import EnergySource, QueryTemplates, render

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from e2e.harness.prometheus import LocalPrometheus  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "exposition"
KEPLER = FIXTURES / "kepler-v0.11.4.prom"
DCGM = FIXTURES / "dcgm-exporter-4.5.3-4.8.2.prom"
COUNTER_SECONDS = 100.0
NS, NAME = "prod", "llama"
# The serving pods scraped by the PodMonitor: (namespace, pod, model_deployment).
SERVING_PODS = (
    ("prod", "llama-7d9f8c6b5-x2x9z", "llama"),
    ("prod", "llama-7d9f8c6b5-q8w4n", "llama"),
    ("prod", "llama-high-5c8d7f9b6-k3j2m", "llama-high"),
    ("staging", "llama-7d9f8c6b5-x2x9z", "llama"),
    ("prod", "tiny-5f4d3c2b1-zzzzz", "tiny"),
)
SERVING_JOULES = 500.0  # wattserve_energy_joules_total of each serving pod after 100 s
WINDOW = "6s"  # 12 scrapes; the fixture waits until the window is full
_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _parse(path: Path) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in path.read_text().splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match["labels"] or ""))
            out.append((match["name"], labels, float(match["value"])))
    return out


def _serving_text(ns: str, md: str) -> str:
    common = (f'{contract.LABEL_MODEL}="m",{contract.LABEL_ENGINE}="llamacpp",'
              f'{contract.LABEL_POOL}="cpu",{contract.LABEL_NAMESPACE}="{ns}",'
              f'{contract.LABEL_MODEL_DEPLOYMENT}="{md}"')
    return (f"# TYPE {contract.REQUESTS_IN_FLIGHT} gauge\n"
            f"{contract.REQUESTS_IN_FLIGHT}{{{common}}} 0\n"
            f"# TYPE {contract.ENERGY_JOULES_TOTAL} counter\n"
            f'{contract.ENERGY_JOULES_TOTAL}{{{common},source="rapl"}} {SERVING_JOULES}\n')


class _Exporters(BaseHTTPRequestHandler):
    """``/kepler``, ``/dcgm`` and ``/serving/<ns>/<pod>/<md>``; counters grow linearly."""

    started: ClassVar[float] = time.time()

    def do_GET(self) -> None:
        if self.path == "/kepler":
            text = KEPLER.read_text()
        elif self.path == "/dcgm":
            text = DCGM.read_text()
        elif self.path.startswith("/serving/"):
            ns, _pod, md = self.path.split("/")[2:5]
            text = _serving_text(ns, md)
        else:
            self.send_error(404)
            return
        body = _grow(text, time.time() - self.started).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _grow(text: str, elapsed: float) -> str:
    counters = set(re.findall(r"^# TYPE (\S+) counter$", text, flags=re.M))
    lines = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] in counters:
            value = float(match["value"]) * (1 + elapsed / COUNTER_SECONDS)
            line = line[: match.start("value")] + repr(value)
        lines.append(line)
    return "\n".join(lines) + "\n"


class _ChartScrapes(LocalPrometheus):
    """Scrape jobs shaped like the charts' ServiceMonitor/PodMonitor after relabelling."""

    exporter_address = ""
    with_kepler = True
    with_dcgm = True

    def _write_config(self) -> Path:
        addr = self.exporter_address
        jobs: list[dict[str, Any]] = []
        if self.with_kepler:
            jobs.append({"job_name": "kepler", "honor_labels": False, "metrics_path": "/kepler",
                         "static_configs": [{"targets": [addr], "labels": {
                             "namespace": "kepler", "pod": "kepler-x7k2p",
                             "container": "kepler"}}]})
        if self.with_dcgm:
            jobs.append({"job_name": "dcgm-exporter", "honor_labels": False,
                         "metrics_path": "/dcgm", "static_configs": [{"targets": [addr],
                         "labels": {"namespace": "gpu-operator",
                                    "pod": "nvidia-dcgm-exporter-9wq4t",
                                    "container": "nvidia-dcgm-exporter"}}]})
        for ns, pod, md in SERVING_PODS:
            jobs.append({"job_name": f"serving-{ns}-{pod}", "honor_labels": True,
                         "metrics_path": f"/serving/{ns}/{pod}/{md}",
                         "static_configs": [{"targets": [addr], "labels": {
                             "namespace": ns, "pod": pod, "node": "cpu-node-1"}}]})
        interval = f"{round(self.scrape_interval * 1000)}ms"
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
                  "scrape_configs": jobs}
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


@pytest.fixture(scope="module", name="prom")
def prom_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ChartScrapes]:
    if not Path(shutil.which("prometheus") or "/usr/bin/prometheus").exists():
        pytest.fail("no prometheus binary: apt-get install prometheus", pytrace=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporters)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    prom = _ChartScrapes(tmp_path_factory.mktemp("prom"), scrape_interval=0.5)
    prom.exporter_address = f"127.0.0.1:{server.server_address[1]}"
    prom.start()
    try:
        _wait_for(prom, "kepler_pod_cpu_joules_total", 11)
        _wait_for(prom, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 11)
        time.sleep(2.0)  # the oldest sample now lies before the window: rate() is exact
        yield prom
    finally:
        prom.stop()
        server.shutdown()
        server.server_close()


def _wait_for(prom: LocalPrometheus, metric: str, samples: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = prom.query(f"count_over_time({metric}[{WINDOW}])")
        if got and min(float(r["value"][1]) for r in got) >= samples:
            return
        time.sleep(0.3)
    pytest.fail(f"{metric}: fewer than {samples} scrapes in {timeout:.0f}s", pytrace=False)


def _value(prom: LocalPrometheus, promql: str) -> float | None:
    result = prom.query(promql)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def _expected_watts(path: Path, metric: str, ns_label: str, pod_label: str,
                    pods: set[tuple[str, str]], zones: set[str] | None = None) -> float:
    total = 0.0
    for name, labels, value in _parse(path):
        if name != metric or (labels.get(ns_label), labels.get(pod_label)) not in pods:
            continue
        if zones is not None and labels.get("zone") not in zones:
            continue
        total += value / COUNTER_SECONDS
    return total


LLAMA_PODS = {(ns, pod) for ns, pod, md in SERVING_PODS if (ns, md) == (NS, NAME)}


def _queries() -> dict[EnergySource, str]:
    return render(QueryTemplates(window=WINDOW), NS, NAME).energy_watts


def test_kepler_query_counts_package_and_dram_of_exactly_the_deployments_pods(
        prom: _ChartScrapes) -> None:
    expected = _expected_watts(
        KEPLER, "kepler_pod_cpu_joules_total", "pod_namespace", "pod_name", LLAMA_PODS,
        zones={"package", "dram"}) + _expected_watts(
        KEPLER, "kepler_pod_gpu_joules_total", "pod_namespace", "pod_name", LLAMA_PODS)
    # 2 pods: (2000+400 + 1000+100) J package+dram + 30000 J GPU, over 100 s.
    assert expected == pytest.approx(335.0)
    got = _value(prom, _queries()[EnergySource.KEPLER])
    assert got == pytest.approx(expected, rel=0.05)


def test_kepler_query_would_be_wrong_with_every_zone_or_a_name_prefix(
        prom: _ChartScrapes) -> None:
    all_zones = _expected_watts(KEPLER, "kepler_pod_cpu_joules_total", "pod_namespace",
                                "pod_name", LLAMA_PODS)
    package_dram = _expected_watts(KEPLER, "kepler_pod_cpu_joules_total", "pod_namespace",
                                   "pod_name", LLAMA_PODS, zones={"package", "dram"})
    assert all_zones > 2.5 * package_dram  # overlapping RAPL zones: summing them over-counts
    prefix = _value(prom, f'sum(rate(kepler_pod_cpu_joules_total{{pod_namespace="{NS}", '
                          f'zone="package", pod_name=~"{NAME}-.*"}}[{WINDOW}]))')
    exact = _value(prom, f'sum(rate(kepler_pod_cpu_joules_total{{pod_namespace="{NS}", '
                         f'zone="package", pod_name=~"{NAME}-[a-z0-9]+-[a-z0-9]+"}}[{WINDOW}]))')
    assert prefix is not None and exact is not None
    assert prefix > exact  # llama-high's pod and the terminated one ride along


def test_the_old_kepler_and_dcgm_queries_match_nothing_on_real_label_names(
        prom: _ChartScrapes) -> None:
    old_kepler = (f'sum(rate(kepler_pod_cpu_joules_total{{container_namespace="{NS}", '
                  f'pod_name=~"{NAME}-.*"}}[{WINDOW}]))')
    old_dcgm = (f'sum(rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{namespace="{NS}", '
                f'pod=~"{NAME}-.*"}}[{WINDOW}])) / 1000')
    assert _value(prom, old_kepler) is None
    assert _value(prom, old_dcgm) is None


def test_dcgm_query_reads_exported_labels_of_the_chart_scrape(prom: _ChartScrapes) -> None:
    # GPUs 0 and 1 belong to llama's first pod; GPU 2 to llama-high; GPU 3 to nobody.
    expected = _expected_watts(DCGM, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "namespace",
                               "pod", LLAMA_PODS) / 1000
    assert expected == pytest.approx(810.5)
    series = prom.query('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"}')
    assert series and series[0]["metric"]["exported_pod"] == "llama-7d9f8c6b5-x2x9z"
    assert series[0]["metric"]["pod"] == "nvidia-dcgm-exporter-9wq4t"
    got = _value(prom, _queries()[EnergySource.DCGM])
    assert got == pytest.approx(expected, rel=0.05)


def test_wattserve_query_sums_the_deployments_own_counters(prom: _ChartScrapes) -> None:
    got = _value(prom, _queries()[EnergySource.WATTSERVE])
    assert got == pytest.approx(2 * SERVING_JOULES / COUNTER_SECONDS, rel=0.05)


def test_every_template_parses_and_answers_on_the_real_prometheus(prom: _ChartScrapes) -> None:
    q = render(QueryTemplates(window=WINDOW), NS, NAME)
    for expr in (q.request_rate, q.p95_latency, q.p95_ttft, q.prompt_tps, q.generation_tps,
                 q.in_flight, q.queued, q.busy, *q.energy_watts.values()):
        body = prom._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert body is not None and b'"status":"success"' in body, expr
    assert _value(prom, q.in_flight) == 0.0


def test_collect_picks_the_first_energy_source_that_answers(prom: _ChartScrapes) -> None:
    client = PrometheusClient(prom.url)
    obs = collect(client, render(QueryTemplates(window=WINDOW), NS, NAME))
    assert obs.energy_source == "kepler"
    dcgm_first = QueryTemplates(window=WINDOW, energy_preference=(
        EnergySource.DCGM, EnergySource.WATTSERVE))
    assert collect(client, render(dcgm_first, NS, NAME)).energy_source == "dcgm"
    # A deployment whose pods have no Kepler or DCGM series uses its own counter.
    tiny = collect(client, render(QueryTemplates(window=WINDOW), NS, "tiny"))
    assert tiny.energy_source == "wattserve"
