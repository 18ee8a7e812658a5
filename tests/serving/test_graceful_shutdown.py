"""SIGTERM on a serving replica (a scale-down, a rollout, a node drain): what is running
finishes, what is queued and what arrives gets a retryable OpenAI-style 503 at once.

Before: uvicorn got 5 s to finish (the pod had 30 s of grace), a running stream was cut
without an error event or ``[DONE]``, and a queued request got a text/plain 500.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from wattserve import contract
from wattserve_serving.admission import AdmissionGate, Draining
from wattserve_serving.app import create_app
from wattserve_serving.server import DrainingServer, uvicorn_config

from serving_fakes import FakeEngine
from serving_helpers import fake_config

CHAT = "/v1/chat/completions"
TOKEN_DELAY_S = 0.05
TOKENS = 40  # 2 s of generation: longer than the old 5 s budget would matter for, short here


def _body(stream: bool) -> dict[str, Any]:
    return {"model": "fake", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": TOKENS, "stream": stream}


class _Replica:
    """The serving app under DrainingServer in a thread, as the CLI runs it."""

    def __init__(self) -> None:
        from wattserve.devcluster.processes import free_port

        cfg = fake_config()
        cfg.host, cfg.port = "127.0.0.1", free_port()
        self.app = create_app(cfg, engine=FakeEngine(context_length=4096, delay_s=TOKEN_DELAY_S))
        self.url = f"http://127.0.0.1:{cfg.port}"
        config = uvicorn_config(self.app, cfg.host, cfg.port, log_level="warning",
                                timeout_graceful_shutdown=contract.SERVING_DRAIN_SECONDS)
        self.server = DrainingServer(config, self.app.state.api.begin_drain)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the replica did not start")

    def sigterm(self) -> None:
        """What uvicorn's signal handler does on SIGTERM."""
        self.server.handle_exit(signal.SIGTERM, None)


def test_running_requests_finish_and_queued_ones_get_a_retryable_503() -> None:
    replica = _Replica()
    results: dict[str, Any] = {}

    def streamed() -> None:
        with httpx.stream("POST", replica.url + CHAT, json=_body(True), timeout=30) as resp:
            results["stream"] = [line for line in resp.iter_lines() if line]

    def queued() -> None:
        results["queued"] = httpx.post(replica.url + CHAT, json=_body(False), timeout=30)

    running = threading.Thread(target=streamed)
    running.start()
    time.sleep(0.3)  # the stream holds the one slot
    waiting = threading.Thread(target=queued)
    waiting.start()
    time.sleep(0.3)  # queued behind it
    started = time.monotonic()
    replica.sigterm()
    waiting.join(timeout=10)
    refused_after = time.monotonic() - started
    running.join(timeout=contract.SERVING_DRAIN_SECONDS)
    replica.thread.join(timeout=contract.SERVING_DRAIN_SECONDS + 5)

    answer = results["queued"]
    assert answer.status_code == 503 and refused_after < 2  # at once, not after the drain
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["code"] == "shutting_down"
    events = results["stream"]
    assert events[-1] == "data: [DONE]"  # the running stream ran to its end
    tokens = "".join(json.loads(e.removeprefix("data: "))["choices"][0]["delta"].get("content")
                     or "" for e in events[:-1] if e.startswith("data: {"))
    assert tokens.split() == [f"w{i}" for i in range(TOKENS)]
    assert not replica.thread.is_alive()


def test_a_draining_gate_refuses_new_and_queued_work_and_leaks_no_slot() -> None:
    async def scenario() -> tuple[list[str], int]:
        gate = AdmissionGate(slots=1, max_queue=4)
        outcome: list[str] = []
        first = gate.reserve()
        await first.__aenter__()

        async def wait_in_line(name: str) -> None:
            try:
                async with gate.reserve():
                    outcome.append(f"{name} ran")
            except Draining:
                outcome.append(f"{name} refused")

        waiters = [asyncio.create_task(wait_in_line(n)) for n in ("a", "b")]
        cancelled = asyncio.create_task(wait_in_line("c"))
        await asyncio.sleep(0.01)
        cancelled.cancel()  # a queued request whose client left
        await asyncio.sleep(0.01)
        gate.drain()
        await asyncio.gather(*waiters)
        with pytest.raises(Draining):
            gate.reserve()
        await first.__aexit__(None, None, None)  # the running one finishes
        return outcome, gate.queued + gate.running

    outcome, left = asyncio.run(scenario())
    assert outcome == ["a refused", "b refused"] and left == 0


class _FlakySource:
    """Fault injection: an energy source whose reads fail from the third on (an NVML
    XID, a driver reload), then recover."""

    name = "nvml"

    def __init__(self) -> None:
        self.reads = 0
        self.failing = False

    def joules(self) -> float:
        self.reads += 1
        if self.failing:
            raise OSError("NVML_ERROR_GPU_IS_LOST")
        return float(self.reads)


def test_a_failing_energy_reading_skips_and_metrics_still_answer(fake_server_factory: Any) -> None:
    from wattserve_serving.energy import EnergyMeter

    server = fake_server_factory(FakeEngine(), energy_interval_s=0.05)
    api = server.api
    source = _FlakySource()
    api.energy = EnergyMeter(source, api.metrics.add_energy)
    source.failing = True
    time.sleep(0.3)  # the sampler meets the failure several times
    scraped = httpx.get(server.url + "/metrics", timeout=5)
    assert scraped.status_code == 200, scraped.text  # before: 500, the sampler dead for good
    assert "wattserve_requests_in_flight" in scraped.text
    errors = server.metrics()["wattserve_energy_read_errors_total"]
    assert errors >= 2
    source.failing = False
    reads = source.reads
    time.sleep(0.3)
    assert source.reads > reads + 2  # the sampler goes on
    assert server.metrics()["wattserve_energy_read_errors_total"] == pytest.approx(
        errors, abs=1)
