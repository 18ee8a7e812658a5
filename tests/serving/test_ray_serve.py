"""The app under Ray Serve for real (`wattserve-serve --server ray`): the OpenAI routes, and
its drain on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from wattserve import contract
from wattserve.devcluster.processes import free_port

from serving_helpers import parse_metrics, smollm2_path

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.mark.parametrize("direct_ingress", ["1", "0"], ids=["direct-ingress", "serve-proxy"])
def test_chat_completion_under_ray_serve(direct_ingress: str) -> None:
    model = smollm2_path()
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "WATTSERVE_ENERGY_SOURCE": "model",
           "WATTSERVE_RAY_DIRECT_INGRESS": direct_ingress}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattserve_serving.cli", "--server", "ray", "--model", str(model),
         "--model-name", "smollm2", "--port", str(port), "--threads", "2", "--max-queue", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"ray server exited {proc.returncode}: {proc.stdout.read()[-3000:]}")  # type: ignore[union-attr]
            try:
                status = httpx.get(url + "/health", timeout=2).status_code
            except httpx.HTTPError:
                status = 0
            if status == 200:
                break
            assert status in (0, 404, 500, 503), f"/health answered {status}"
            time.sleep(1)
        else:
            pytest.fail("Ray Serve app did not become healthy in 240 s")
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
        resp = client.chat.completions.create(
            model="smollm2", max_tokens=16, temperature=0,
            messages=[{"role": "user", "content": "What is the capital of France? One word."}],
        )
        assert "paris" in (resp.choices[0].message.content or "").lower()
        assert resp.usage is not None and resp.usage.completion_tokens >= 1
        chunks = list(client.chat.completions.create(
            model="smollm2", max_tokens=8, temperature=0, stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Say hi."}],
        ))
        assert chunks and chunks[-1].usage is not None
        assert client.models.retrieve("smollm2").id == "smollm2"  # the routes uvicorn has
        answer = client.responses.create(model="smollm2", input="Say hi.", max_output_tokens=4)
        assert answer.output_text and answer.usage is not None
        assert answer.usage.output_tokens >= 1
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert "wattserve_generation_tokens_total{" in metrics
        bad = httpx.post(url + "/v1/chat/completions", json={"model": "smollm2"}, timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
        assert_disconnect_cancels(url)
        assert_sigterm_lets_a_running_stream_finish(proc, url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def generated(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return parse_metrics(text)["wattserve_generation_tokens_total"]


def assert_disconnect_cancels(url: str) -> None:
    """Through Ray's proxy too: closing the stream stops token production."""
    body = {"model": "smollm2", "max_tokens": 400, "stream": True, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Count to one thousand."}]}
    before = generated(url)
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as resp:
        for n, _ in enumerate(resp.iter_lines()):
            if n >= 10:
                break
    time.sleep(1.0)
    after_close = generated(url)
    time.sleep(1.0)
    assert generated(url) == after_close, "tokens kept being generated after the client left"
    assert after_close - before < 400


def assert_sigterm_lets_a_running_stream_finish(proc: subprocess.Popen[str], url: str) -> None:
    """SIGTERM on the main process, as the kubelet sends it (a scale-down, a rollout): the
    running stream runs to its end, a request queued behind it gets the retryable 503, and
    the process exits within the pod's grace.

    Before: Ray's core ended the driver on SIGTERM at once (the container, and every stream
    in it, with it); run by hand, the orphaned Ray workers finished the stream and served
    new requests while nothing owned them."""
    tokens = 120  # seconds of decoding: longer than the drain takes to begin, well inside 20 s
    body = {"model": "smollm2", "max_tokens": tokens, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Count to one thousand."}]}
    lines: list[str] = []
    first = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as resp:
            for line in resp.iter_lines():
                if line:
                    lines.append(line)
                    first.set()
        first.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first.wait(60), "the stream sent nothing"
    stopped = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # as the kubelet does: the main process only
    # Behind the running stream (one slot): queued, then turned away by the drain.
    late = httpx.post(url + "/v1/chat/completions", timeout=30, json={
        "model": "smollm2", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    refused_after = time.monotonic() - stopped
    reader.join(timeout=contract.SERVING_DRAIN_SECONDS + 10)
    proc.wait(timeout=contract.SERVING_DRAIN_SECONDS + 20)
    exited = time.monotonic() - stopped
    assert lines and lines[-1] == "data: [DONE]", f"the stream was cut: {lines[-3:]}"
    usage = json.loads(lines[-2].removeprefix("data: "))["usage"]
    assert usage["completion_tokens"] == tokens, usage
    assert late.status_code == 503, (late.status_code, late.text[:200])
    assert late.json()["error"]["code"] == "shutting_down" and refused_after < 10
    assert proc.returncode == 0, proc.returncode
    assert exited < contract.SERVING_DRAIN_SECONDS + 20, exited
