"""A real Prometheus (Debian's `prometheus` binary) on loopback, for tests and the demo.

Scrapes static loopback targets every ``scrape_interval`` seconds; targets can be changed
while it runs (the config is rewritten and reloaded through `/-/reload`). Whole scrape configs
(e.g. Kubernetes service discovery, e2e/harness/podmonitor.py) can be added as they are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from wattserve.devcluster.processes import free_port


def _duration(seconds: float) -> str:
    """Prometheus durations are integers with a unit: 1500ms, 2s."""
    return f"{round(seconds * 1000)}ms"


@dataclass
class Target:
    job: str
    address: str  # host:port on loopback
    labels: dict[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"


class LocalPrometheus:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, workdir: Path, scrape_interval: float = 1.0,
                 binary: str | None = None, host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.host = host  # listen address (e.g. the CNI gateway, for in-cluster clients)
        self.scrape_interval = scrape_interval
        self.binary = binary or shutil.which("prometheus") or "/usr/bin/prometheus"
        self.port = 0
        self.targets: list[Target] = []
        # Scrape configs written as they are (e.g. Kubernetes service discovery jobs).
        self.scrape_configs: list[dict[str, Any]] = []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_config(self) -> Path:
        jobs: dict[tuple[str, str], list[Target]] = {}
        for target in self.targets:
            jobs.setdefault((target.job, target.metrics_path), []).append(target)
        config: dict[str, Any] = {
            "global": {"scrape_interval": _duration(self.scrape_interval),
                       "evaluation_interval": _duration(self.scrape_interval)},
            "scrape_configs": [
                {"job_name": job, "metrics_path": path, "scrape_timeout":
                 _duration(max(0.5, self.scrape_interval * 0.8)),
                 "static_configs": [{"targets": [t.address], "labels": t.labels}
                                    for t in targets]}
                for (job, path), targets in jobs.items()
            ] + list(self.scrape_configs),
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout: float = 30.0, port: int = 0) -> LocalPrometheus:
        """Start on ``port`` (a free one when 0) and wait until it is ready."""
        if not Path(self.binary).exists():
            raise RuntimeError(f"prometheus binary not found at {self.binary}: "
                               "apt-get install prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self.port = port or free_port()
        log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [self.binary, f"--config.file={config}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address={self.host}:{self.port}", "--web.enable-lifecycle",
             "--storage.tsdb.retention.time=2h"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: see {self.workdir / 'prometheus.log'}")
            if self._get("/-/ready") is not None:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout:.0f}s")

    def set_targets(self, targets: list[Target]) -> None:
        self.targets = list(targets)
        self._write_config()
        if self.process is not None and self.process.poll() is None:
            request = urllib.request.Request(self.url + "/-/reload", method="POST")
            with urllib.request.urlopen(request, timeout=5):
                pass

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (empty on any error)."""
        from urllib.parse import urlencode

        body = self._get("/api/v1/query?" + urlencode({"query": promql}))
        if body is None:
            return []
        data = json.loads(body)
        result: list[dict[str, Any]] = data.get("data", {}).get("result", [])
        return result

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, OSError):
            return None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
