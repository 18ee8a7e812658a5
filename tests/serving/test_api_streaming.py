"""Wire format, usage, metrics and disconnect handling against a fake engine."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from serving_fakes import FailingEngine, FakeEngine

CHAT = "/v1/chat/completions"


def sse_events(resp: httpx.Response) -> list[Any]:
    events: list[Any] = []
    for line in resp.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.fixture
def server(fake_server_factory: Any) -> Any:
    return fake_server_factory(FakeEngine())


def test_models_and_health(server: Any) -> None:
    models = httpx.get(server.url + "/v1/models", timeout=10).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["fake"]
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_chat_non_streaming(server: Any) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": "a b c"}], "max_tokens": 4}
    resp = httpx.post(server.url + CHAT, json=body, timeout=10).json()
    assert resp["object"] == "chat.completion"
    assert resp["choices"][0]["message"] == {"role": "assistant", "content": "w0 w1 w2 w3 ",
                                             "refusal": None}  # OpenAI's, required by openai-node
    assert resp["choices"][0]["finish_reason"] == "length"
    # fake template "user: a b c" -> 4 whitespace tokens
    assert resp["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}


@pytest.mark.parametrize("include_usage", [None, True, False])
def test_chat_stream_format_and_usage(server: Any, include_usage: bool | None) -> None:
    body: dict[str, Any] = {"model": "fake", "messages": [{"role": "user", "content": "x"}],
                            "max_tokens": 3, "stream": True}
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    with httpx.stream("POST", server.url + CHAT, json=body, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "w0 w1 w2 "
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and all(f is None for f in finishes[:-1])
    usages = [c for c in chunks if c.get("usage")]
    expected = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    if include_usage:
        assert len(usages) == 1 and usages[0]["choices"] == [] and chunks[-1] is usages[0]
        assert usages[0]["usage"] == expected
        assert all(c["usage"] is None for c in chunks[:-1])  # present, null (OpenAI's docs)
    else:  # OpenAI: no `usage` in a stream unless stream_options.include_usage
        assert usages == []
        assert all("usage" not in c for c in chunks)


def test_every_answer_carries_a_request_id(server: Any) -> None:
    """OpenAI's ``x-request-id`` (the clients' ``_request_id``): the caller's own when sane,
    else a new one; on answers, errors and streams alike."""
    body = {"model": "fake", "messages": [{"role": "user", "content": "a"}], "max_tokens": 2}
    ids = set()
    for extra in ({}, {"stream": True}, {"model": "nope"}):
        resp = httpx.post(server.url + CHAT, json={**body, **extra}, timeout=10)
        assert resp.headers["x-request-id"].startswith("req_"), resp.headers
        ids.add(resp.headers["x-request-id"])
    assert len(ids) == 3
    mine = httpx.get(server.url + "/v1/models", headers={"X-Request-Id": "gw-7:a/b"}, timeout=10)
    assert mine.headers.get_list("x-request-id") == ["gw-7:a/b"]
    odd = httpx.get(server.url + "/v1/models", headers={"X-Request-Id": "a b"}, timeout=10)
    assert odd.headers["x-request-id"].startswith("req_")


def test_completion_stream(server: Any) -> None:
    body = {"model": "fake", "prompt": "p q", "max_tokens": 2, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=10) as resp:
        events = sse_events(resp)
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "text_completion" for e in events[:-1])
    assert "".join(e["choices"][0]["text"] for e in events[:-1] if e["choices"]) == "w0 w1 "
    assert events[-2]["usage"]["completion_tokens"] == 2


def test_metrics_count_requests_tokens_and_latency(server: Any) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": "a"}], "max_tokens": 5}
    for _ in range(3):
        assert httpx.post(server.url + CHAT, json=body, timeout=10).status_code == 200
    httpx.post(server.url + CHAT, json={"model": "fake"}, timeout=10)
    m = server.metrics()
    assert m["wattserve_generation_tokens_total"] == 15
    assert m["wattserve_prompt_tokens_total"] == 6
    assert m["wattserve_request_duration_seconds_count"] == 3  # served requests only
    assert m["wattserve_time_to_first_token_seconds_count"] == 3
    assert m["wattserve_inter_token_latency_seconds_count"] == 12
    labels = "engine=llamacpp,model=fake,model_deployment=local,namespace=,pool="
    assert m[f"wattserve_requests_total{{{labels},status=200}}"] == 3
    assert m[f"wattserve_requests_total{{{labels},status=400}}"] == 1
    assert m[f"wattserve_request_errors_total{{{labels},status=400}}"] == 1
    assert any(k.startswith("wattserve_energy_joules_total{") for k in m)
    assert any(k.startswith("wattserve_power_watts{") for k in m)


def test_disconnect_cancels_generation(fake_server_factory: Any) -> None:
    engine = FakeEngine(delay_s=0.02, context_length=10_000)
    server = fake_server_factory(engine)
    body = {"model": "fake", "messages": [{"role": "user", "content": "go"}],
            "max_tokens": 5000, "stream": True}
    with httpx.stream("POST", server.url + CHAT, json=body, timeout=10) as resp:
        for n, _ in enumerate(resp.iter_lines()):
            if n > 10:
                break
    deadline = time.monotonic() + 5
    while engine.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.cancelled == 1
    produced = engine.produced
    time.sleep(0.3)
    assert engine.produced == produced < 100
    m = server.metrics()
    assert m["wattserve_requests_in_flight"] == 0
    assert m["wattserve_generation_tokens_total"] == produced
    assert any(k.endswith("status=499}") for k in m)


def test_any_failure_mid_stream_ends_with_an_error_event_and_done(
        fake_server_factory: Any) -> None:
    server = fake_server_factory(FailingEngine())
    body = {"model": "fake", "messages": [{"role": "user", "content": "a"}], "max_tokens": 5,
            "stream": True}
    with httpx.stream("POST", server.url + CHAT, json=body, timeout=10) as resp:
        events = sse_events(resp)  # a cut-off body would raise RemoteProtocolError here
    assert resp.status_code == 200 and events[-1] == "[DONE]"
    assert events[-2]["error"]["type"] == "server_error"
    assert any(k.endswith("status=500}") for k in server.metrics())
