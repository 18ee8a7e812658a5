"""Fixtures for serving tests: fake-engine servers and one real-model server per module."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wattserve_serving.config import ServeConfig
from wattserve_serving.engines.base import Engine

from serving_helpers import LoopbackServer, fake_config, openai_client, smollm2_path

# The CPU power model with known node numbers, so energy tests can bound the rate.
MODEL_SERVER_ENV = {
    "WATTSERVE_ENERGY_SOURCE": "model",
    "WATTSERVE_NODE_IDLE_WATTS": "20",
    "WATTSERVE_NODE_MAX_WATTS": "60",
    "WATTSERVE_NODE_CPUS": str(os.cpu_count() or 1),
}


@pytest.fixture
def fake_server_factory() -> Iterator[object]:
    servers: list[LoopbackServer] = []

    def make(engine: Engine, **overrides: object) -> LoopbackServer:
        server = LoopbackServer(fake_config(**overrides), engine=engine).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def model_path() -> Path:
    return smollm2_path()


@pytest.fixture(scope="module")
def model_server(request: pytest.FixtureRequest) -> Iterator[LoopbackServer]:
    """One real-model server per test module (max_queue from the module's MAX_QUEUE)."""
    path = smollm2_path()
    max_queue = getattr(request.module, "MAX_QUEUE", 8)
    cfg = ServeConfig(model=str(path), model_name="smollm2", engine="llamacpp",
                      threads=max(1, min(2, os.cpu_count() or 1)), max_queue=max_queue,
                      context_length=512, pool="cpu-test", namespace="test",
                      model_deployment="smollm2")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in MODEL_SERVER_ENV.items():
            mp.setenv(key, value)
        server = LoopbackServer(cfg).start()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def client(model_server: LoopbackServer) -> object:
    """The official `openai` client against this module's real-model server."""
    return openai_client(model_server)


@pytest.fixture(scope="module")
def reference(model_server: LoopbackServer) -> object:
    """llama.cpp with every position's logits, apart from the server's engine."""
    from llama_cpp import Llama

    return Llama(model_path=model_server.config.model, n_ctx=512, logits_all=True,
                 n_threads=2, verbose=False)
