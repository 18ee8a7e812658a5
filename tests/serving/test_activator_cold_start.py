"""A model at zero, woken by the activator: the REAL serving app with the REAL SmolLM2 model
starts only when the activator asks (a real cold start on loopback); every held request,
streaming or not, is answered, and exactly one wake-up is asked for."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from wattserve_serving.config import ServeConfig

from activator_helpers import ActivatorServer, LoopbackDiscovery
from serving_helpers import LoopbackServer, parse_metrics, smollm2_path

pytestmark = pytest.mark.model
# The CPU power model with known node numbers (as tests/serving/conftest.py's model server).
MODEL_SERVER_ENV = {"WATTSERVE_ENERGY_SOURCE": "model", "WATTSERVE_NODE_IDLE_WATTS": "20",
                    "WATTSERVE_NODE_MAX_WATTS": "60",
                    "WATTSERVE_NODE_CPUS": str(os.cpu_count() or 1)}
MODEL = {"X-Wattserve-Model-Deployment": "team-a/smollm2"}
HELD = 8


@pytest.fixture
def cold_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ActivatorServer,
                                                                   LoopbackDiscovery]]:
    path = smollm2_path()
    for key, value in MODEL_SERVER_ENV.items():
        monkeypatch.setenv(key, value)
    started: list[LoopbackServer] = []

    def start_replica() -> str:  # what the operator + kubelet do on a wake-up, here
        cfg = ServeConfig(model=str(path), model_name="smollm2", engine="llamacpp",
                          threads=max(1, min(2, os.cpu_count() or 1)), max_queue=32,
                          context_length=512, pool="cpu-test", namespace="team-a",
                          model_deployment="smollm2")
        server = LoopbackServer(cfg).start()
        started.append(server)
        return server.url

    disco = LoopbackDiscovery(start_upstream=start_replica)
    act = ActivatorServer(disco, deadline_s=60.0, poll_s=0.05).start()
    yield act, disco
    act.stop()
    for server in started:
        server.stop()


def chat(stream: bool) -> dict[str, Any]:
    return {"model": "smollm2", "stream": stream, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]}


def send(url: str, stream: bool, out: list[dict[str, Any]]) -> None:
    t0 = time.monotonic()
    record: dict[str, Any] = {"stream": stream}
    with httpx.stream("POST", url + "/v1/chat/completions", json=chat(stream), headers=MODEL,
                      timeout=90) as r:
        record["status"] = r.status_code
        record["held"] = float(r.headers.get("X-Wattserve-Activated", "nan"))
        chunks = []
        for line in r.iter_lines():
            if line.startswith("data: ") and "first_token_s" not in record:
                record["first_token_s"] = time.monotonic() - t0
            chunks.append(line)
        record["body"] = "\n".join(chunks)
    record["total_s"] = time.monotonic() - t0
    out.append(record)


def test_every_held_request_is_answered_after_one_wake_up(
        cold_model: tuple[ActivatorServer, LoopbackDiscovery]) -> None:
    act, disco = cold_model
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=send, args=(act.url, i % 2 == 0, results))
               for i in range(HELD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == HELD, "a held request got no answer"
    assert [r["status"] for r in results] == [200] * HELD, [r["body"][:200] for r in results]
    assert disco.activations == 1  # one wake-up however many waited
    for r in results:
        assert r["held"] > 0  # every one of them was held through the cold start
        if r["stream"]:
            events = [line for line in r["body"].splitlines() if line.startswith("data: ")]
            assert events[-1] == "data: [DONE]" and len(events) >= 3
            assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"
        else:
            assert json.loads(r["body"])["choices"][0]["message"]["content"]
    metrics = parse_metrics(httpx.get(act.admin_url + "/metrics", timeout=5).text)
    assert metrics["wattserve_activator_cold_starts_total"] == 1
    assert metrics["wattserve_activator_held_requests"] == 0
    assert metrics["wattserve_activator_hold_seconds_count"] == HELD
    first = sorted(r["first_token_s"] for r in results if r["stream"])
    first_answer = min(r.get("first_token_s", r["total_s"]) for r in results)
    print(f"\nfrom zero: first answer {first_answer:.2f}s; streams' first token "
          f"{first[0]:.2f}-{first[-1]:.2f}s ({HELD} requests on a one-at-a-time llama.cpp "
          f"replica); held {min(r['held'] for r in results):.2f}-"
          f"{max(r['held'] for r in results):.2f}s")

    # Warm now: forwarded without holding, no second wake-up.
    warm: list[dict[str, Any]] = []
    send(act.url, True, warm)
    assert warm[0]["status"] == 200 and warm[0]["held"] < 0.5  # a look-up, no cold start
    assert disco.activations == 1
