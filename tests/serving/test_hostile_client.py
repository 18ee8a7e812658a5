"""Hostile clients against the real serving app (uvicorn on loopback, deterministic engine).

Each test is a probe of the reliability review that failed before the fix: body size and
time limits, JSON-only bodies, malformed text, clients that leave, admission before any
tokenizing, API keys, and the OpenAI error shapes.
"""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any

import httpx
import pytest

from wattserve_serving import request_body

from serving_fakes import FakeEngine

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
OK_CHAT: dict[str, Any] = {"model": "fake", "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 3}


class CountingEngine(FakeEngine):
    """The fake engine, counting how often a prompt was tokenized or rendered."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenized = 0

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self.tokenized += 1
        return await super().tokenize(text, add_bos)

    async def render_chat(self, messages: list[dict[str, Any]]) -> Any:
        self.tokenized += 1
        return await super().render_chat(messages)


@pytest.fixture
def server(fake_server_factory: Any) -> Any:
    return fake_server_factory(FakeEngine(context_length=64))


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _head(path: str, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{extra}\r\n").encode()


def _status(sock: socket.socket) -> int:
    data = sock.recv(65536)
    return int(data.split(b" ", 2)[1])


def test_declared_huge_body_is_refused_without_reading_it(server: Any) -> None:
    with _connect(server.url) as sock:
        sock.sendall(_head(COMPLETIONS, "Content-Length: 1073741824\r\n"))
        assert _status(sock) == 413  # before: waited for the whole gigabyte


def test_chunked_body_is_cut_off_at_the_limit(server: Any) -> None:
    chunk = b"x" * (1 << 20)
    sent = 0
    with _connect(server.url) as sock:
        sock.sendall(_head(COMPLETIONS, "Transfer-Encoding: chunked\r\n"))
        while sent < 64 << 20:
            try:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except OSError:
                break  # the server answered and closed
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                break
        assert _status(sock) == 413
    assert sent <= request_body.MAX_BODY_BYTES + (4 << 20), sent  # before: buffered it all


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_cross_origin_simple_post_is_refused(server: Any, content_type: str | None) -> None:
    headers = {"Origin": "https://evil.example"}
    if content_type:
        headers["Content-Type"] = content_type
    resp = httpx.post(server.url + CHAT, content=json.dumps(OK_CHAT), headers=headers,
                      timeout=10)
    assert resp.status_code == 415, resp.text  # before: 200 for text/plain
    assert resp.json()["error"]["code"] == "unsupported_media_type"
    assert "access-control-allow-origin" not in resp.headers


@pytest.mark.parametrize("raw", [
    b'{"model":"fake","messages":[{"role":"user","content":"\\ud800"}]}',
    b'{"model":"fake","messages":[{"role":"user","content":"a\\udfffb"}],"max_tokens":2}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 150_000 + b"1" + b"}" * 150_000,
])
def test_malformed_text_is_400_without_internals(server: Any, raw: bytes) -> None:
    resp = httpx.post(server.url + CHAT, content=raw,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400, resp.text  # before: 500 with the exception text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error"
    for leak in ("Traceback", "Error:", "internal error", "surrogates not allowed"):
        assert leak not in err["message"]
    assert server.metrics().get("wattserve_requests_total{engine=llamacpp,model=fake,"
                                "model_deployment=local,namespace=,pool=,status=500}") is None


@pytest.mark.parametrize(("path", "raw"), [
    (CHAT, b'{"model":"fake","messages":[{"role":"user","content":"hi"}],"max_tokens":'
     + b"9" * 5000 + b"}"),
    (COMPLETIONS, b'{"model":"fake","prompt":"hi","seed":-' + b"1" * 4301 + b"}"),
    (CHAT, b'{"model":"fake","messages":[{"role":"user","content":"hi"}],"x":[' + b"9" * 4301
     + b"]}"),
])
def test_a_number_of_more_than_4300_digits_is_400_not_500(server: Any, path: str,
                                                          raw: bytes) -> None:
    resp = httpx.post(server.url + path, content=raw,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400, resp.text  # before: 500 (int max str digits)
    err = resp.json()["error"]
    assert err["code"] == "invalid_json"
    assert "more than 4300 digits" in err["message"]
    assert "set_int_max_str_digits" not in err["message"]
    ok = httpx.post(server.url + CHAT, json=OK_CHAT, timeout=30)
    assert ok.status_code == 200, ok.text


def test_slow_header_connection_is_closed(fake_server_factory: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTSERVE_HEADER_TIMEOUT_S", "1")
    server = fake_server_factory(FakeEngine())
    with _connect(server.url) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        sock.settimeout(10)
        data = sock.recv(1024)  # b"" once the server closes; before: open for good
        assert data == b""
        assert time.monotonic() - start < 5
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200


def test_slow_body_times_out(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_body, "BODY_TIMEOUT_S", 1.0)
    with _connect(server.url) as sock:
        sock.sendall(_head(COMPLETIONS, "Content-Length: 100\r\n") + b"{")
        sock.settimeout(10)
        assert _status(sock) == 408  # before: waited for the body forever


def test_upload_aborted_mid_body_is_499_not_500(server: Any) -> None:
    with _connect(server.url) as sock:
        sock.sendall(_head(COMPLETIONS, "Content-Length: 1000\r\n") + b'{"model":')
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    key = ("wattserve_requests_total{engine=llamacpp,model=fake,model_deployment=local,"
           "namespace=,pool=,status=%d}")
    while time.monotonic() < deadline and key % 499 not in server.metrics():
        time.sleep(0.05)
    metrics = server.metrics()
    assert metrics.get(key % 499) == 1
    assert key % 500 not in metrics


class EmbeddingEngine(FakeEngine):
    """The fake engine as an embedder (``task: embedding``)."""

    dimensions = 4

    def vocab_size(self) -> int:
        return 32000

    async def embed(self, inputs: Any) -> list[list[float]]:
        return [[0.5] * self.dimensions for _ in inputs]


def test_embedding_upload_aborted_mid_body_is_499_not_500(fake_server_factory: Any) -> None:
    server = fake_server_factory(EmbeddingEngine(context_length=64))
    ok = httpx.post(server.url + "/v1/embeddings", json={"model": "fake", "input": "hi"},
                    timeout=10)
    assert ok.status_code == 200, ok.text
    with _connect(server.url) as sock:
        sock.sendall(_head("/v1/embeddings", "Content-Length: 1000\r\n") + b'{"model":')
        time.sleep(0.2)
    key = ("wattserve_requests_total{engine=llamacpp,model=fake,model_deployment=local,"
           "namespace=,pool=,status=%d}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and key % 499 not in server.metrics():
        time.sleep(0.05)
    metrics = server.metrics()
    assert metrics.get(key % 499) == 1  # before: 500, with an ERROR traceback
    assert key % 500 not in metrics


def test_non_streaming_client_that_leaves_stops_generation(fake_server_factory: Any) -> None:
    engine = FakeEngine(context_length=256, delay_s=0.05)
    server = fake_server_factory(engine)
    body = {**OK_CHAT, "max_tokens": 200}  # 10 s of generation
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + CHAT, json=body, timeout=0.5)
    deadline = time.monotonic() + 5
    while engine.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.cancelled == 1  # before: generated all 200 tokens for nobody
    assert engine.produced < 100
    ok = httpx.post(server.url + CHAT, json=OK_CHAT, timeout=10)
    assert ok.status_code == 200


def test_admission_comes_before_tokenizing(fake_server_factory: Any) -> None:
    engine = CountingEngine(context_length=256, delay_s=0.05)
    server = fake_server_factory(engine, max_queue=0)
    with httpx.Client(timeout=30) as client:
        import threading

        busy = threading.Thread(
            target=client.post, args=(server.url + CHAT,), kwargs={"json": {**OK_CHAT,
                                                                            "max_tokens": 40}})
        busy.start()
        deadline = time.monotonic() + 5
        while engine.produced == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        resp = httpx.post(server.url + CHAT, json=OK_CHAT, timeout=10)
        busy.join(30)
    assert resp.status_code == 429
    assert engine.tokenized == 2  # before: 3 (the refused request was rendered too)


def test_prompt_that_cannot_fit_is_refused_before_tokenizing(fake_server_factory: Any) -> None:
    engine = CountingEngine(context_length=64)
    server = fake_server_factory(engine)
    huge = "<|im_end|>" * 1000
    for path, body in ((COMPLETIONS, {"model": "fake", "prompt": huge}),
                       (CHAT, {"model": "fake", "messages": [{"role": "user", "content": huge}]}),
                       (CHAT, {"model": "fake", "messages": [{"role": "user", "content": "a"}]
                               * 100})):
        resp = httpx.post(server.url + path, json=body, timeout=10)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "context_length_exceeded"
    assert engine.tokenized == 0


@pytest.mark.parametrize(("param", "value"), [
    ("logprobs", True), ("top_logprobs", 3), ("response_format", {"type": "json_object"}),
    ("tools", [{"type": "function", "function": {"name": "f"}}]),
    ("best_of", 2), ("functions", [{"name": "f"}]),
])
def test_unimplemented_parameters_are_400(server: Any, param: str, value: Any) -> None:
    resp = httpx.post(server.url + CHAT, json={**OK_CHAT, param: value}, timeout=10)
    assert resp.status_code == 400, resp.text  # before: 200, silently ignored
    err = resp.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert err["code"] == "unsupported_parameter"


def test_parameters_set_off_are_accepted(server: Any) -> None:
    body = {**OK_CHAT, "logprobs": False, "response_format": {"type": "text"}, "tools": None}
    assert httpx.post(server.url + CHAT, json=body, timeout=10).status_code == 200


def test_latency_histogram_counts_only_served_requests(server: Any) -> None:
    assert httpx.post(server.url + CHAT, json=OK_CHAT, timeout=10).status_code == 200
    assert httpx.post(server.url + CHAT, json={"model": "fake"}, timeout=10).status_code == 400
    assert httpx.post(server.url + CHAT, json={**OK_CHAT, "model": "x"},
                      timeout=10).status_code == 404
    m = server.metrics()
    assert m["wattserve_request_duration_seconds_count"] == 1  # before: 3
    labels = "engine=llamacpp,model=fake,model_deployment=local,namespace=,pool="
    assert m[f"wattserve_request_errors_total{{{labels},status=400}}"] == 1
    assert m[f"wattserve_request_errors_total{{{labels},status=404}}"] == 1
    assert m["wattserve_requests_total"] == 3


def test_api_keys_guard_the_openai_endpoints(fake_server_factory: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTSERVE_API_KEY", "k-one, k-two")
    server = fake_server_factory(FakeEngine())
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "k-one"},
                    {"Authorization": "Basic k-one"}):
        resp = httpx.post(server.url + CHAT, json=OK_CHAT, headers=headers, timeout=10)
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/v1/models", timeout=10).status_code == 401
    assert httpx.get(server.url + "/v1/models/fake", timeout=10).status_code == 401
    for key in ("k-one", "k-two"):
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.post(server.url + CHAT, json=OK_CHAT, headers=auth,
                          timeout=10).status_code == 200
        assert httpx.get(server.url + "/v1/models", headers=auth, timeout=10).status_code == 200
        assert httpx.get(server.url + "/v1/models/fake", headers=auth,
                         timeout=10).status_code == 200
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    assert httpx.get(server.url + "/metrics", timeout=10).status_code == 200


def test_api_key_file_that_cannot_be_read_stops_the_server(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wattserve_serving import cli

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("WATTSERVE_API_KEY_FILE", str(tmp_path / "missing"))
    assert cli.run(["--model", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "WATTSERVE_API_KEY_FILE" in err[0]


def test_bodies_in_flight_share_one_memory_budget(server: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_body, "MAX_BUFFERED_BYTES", 1 << 20)
    part = b'{"model":"fake","prompt":"' + b"x" * (700 << 10)
    with _connect(server.url) as first, _connect(server.url) as second:
        first.sendall(_head(COMPLETIONS, f"Content-Length: {len(part) + 100}\r\n") + part)
        time.sleep(0.3)  # the first body now holds 700 KiB of the 1 MiB budget
        second.sendall(_head(COMPLETIONS, f"Content-Length: {len(part) + 100}\r\n") + part)
        second.settimeout(10)
        data = second.recv(65536)
        assert int(data.split(b" ", 2)[1]) == 429 and b"server_busy" in data
    deadline = time.monotonic() + 5
    while request_body._buffered["bytes"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert request_body._buffered["bytes"] == 0  # released when the connections closed


@pytest.mark.parametrize(("messages", "status"), [(28_000, 400), (150_000, 413)])
def test_huge_bodies_never_stall_health(server: Any, messages: int, status: int) -> None:
    import threading

    raw = json.dumps({"model": "fake",
                      "messages": [{"role": "user", "content": "x"}] * messages}).encode()
    result: dict[str, Any] = {}

    def post() -> None:
        result["resp"] = httpx.post(server.url + CHAT, content=raw, timeout=60,
                                    headers={"Content-Type": "application/json"})

    worker = threading.Thread(target=post)
    worker.start()
    worst = 0.0
    while worker.is_alive():
        start = time.monotonic()
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - start)
        time.sleep(0.02)
    worker.join()
    # 28k messages (~1 MB, under the body limit of a 64-token model) are counted before
    # they are validated; 150k (3.4 MB) are beyond that limit
    assert result["resp"].status_code == status, result["resp"].text
    assert worst < 0.5, worst  # before: 150k messages held the loop for > 2 s


def test_probes_and_scrapes_answer_while_clients_hold_every_connection(
        fake_server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle connections up to the limit: the API answers 503, /health and /metrics 200
    (before: /health 503 too, so readiness dropped the pod and liveness restarted it)."""
    from wattserve_serving import server as server_module

    monkeypatch.setattr(server_module, "LIMIT_CONCURRENCY", 8)
    server = fake_server_factory(FakeEngine())
    held = [_connect(server.url) for _ in range(10)]
    try:
        time.sleep(0.3)
        assert httpx.get(server.url + "/v1/models", timeout=5).status_code == 503
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        metrics = httpx.get(server.url + "/metrics", timeout=5)
        assert metrics.status_code == 200 and "wattserve_" in metrics.text
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(server.url + "/v1/models", timeout=5).status_code == 200


def test_a_streaming_client_that_stops_reading_gives_its_slot_back(
        fake_server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the stream's writes blocked for good once the socket buffers were full, and
    the replica's one engine slot with them (every other request queued, then 429)."""
    from wattserve_serving import streaming

    monkeypatch.setattr(streaming, "STALL_TIMEOUT_S", 1.0)
    server = fake_server_factory(FakeEngine(context_length=8192))
    body = json.dumps({"model": "fake", "prompt": "hi", "max_tokens": 8000, "n": 8,
                       "stream": True}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    host, port = server.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    try:
        sock.sendall(_head(COMPLETIONS, f"Content-Length: {len(body)}\r\n") + body)
        time.sleep(0.5)  # the stream fills the buffers; the client reads nothing
        started = time.monotonic()
        ok = httpx.post(server.url + COMPLETIONS, json={"model": "fake", "prompt": "hi",
                                                        "max_tokens": 3}, timeout=20)
        assert ok.status_code == 200, ok.text
        assert time.monotonic() - started < 10  # the slot came back after the stall bound
    finally:
        sock.close()
    key = ("wattserve_requests_total{engine=llamacpp,model=fake,model_deployment=local,"
           "namespace=,pool=,status=499}")
    assert server.metrics().get(key) == 1  # counted as a client that left
