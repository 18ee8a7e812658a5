"""Bad input, overload and not-loaded handling, against a fake engine on a loopback port."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from serving_fakes import FakeEngine

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
OK_CHAT: dict[str, Any] = {"model": "fake", "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 3}


def assert_error(resp: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert err["param"] == param
    if param is not None:
        assert param.split(".")[0] in err["message"]
    return err


@pytest.fixture
def server(fake_server_factory: Any) -> Any:
    return fake_server_factory(FakeEngine(context_length=64))


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        (CHAT, {"model": "fake"}, 400, "messages"),
        (CHAT, {"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        (CHAT, {**OK_CHAT, "messages": "hello"}, 400, "messages"),
        (CHAT, {**OK_CHAT, "messages": []}, 400, "messages"),
        (CHAT, {**OK_CHAT, "messages": [{"role": "wizard", "content": "x"}]}, 400,
         "messages.0.role"),
        (CHAT, {**OK_CHAT, "messages": [{"content": "x"}]}, 400, "messages.0.role"),
        (CHAT, {**OK_CHAT, "max_tokens": "5"}, 400, "max_tokens"),
        (CHAT, {**OK_CHAT, "max_tokens": 0}, 400, "max_tokens"),
        (CHAT, {**OK_CHAT, "temperature": "hot"}, 400, "temperature"),
        (CHAT, {**OK_CHAT, "temperature": 7}, 400, "temperature"),
        (CHAT, {**OK_CHAT, "stream": "yes"}, 400, "stream"),
        (CHAT, {**OK_CHAT, "n": 17}, 400, "n"),
        (CHAT, {**OK_CHAT, "tool_choice": "required"}, 400, "tool_choice"),
        (CHAT, {**OK_CHAT, "tools": [{"type": "function", "function": {"name": "a b"}}]}, 400,
         "tools.0.function.name"),
        (CHAT, {**OK_CHAT, "n": 0}, 400, "n"),
        (CHAT, {**OK_CHAT, "stop": 5}, 400, "stop"),
        (CHAT, {**OK_CHAT, "max_tokens": 1000}, 400, "max_tokens"),
        (CHAT, {**OK_CHAT, "max_completion_tokens": 1000}, 400, "max_completion_tokens"),
        (CHAT, {**OK_CHAT, "messages": [{"role": "user", "content": "x " * 80}]}, 400,
         "messages"),
        (CHAT, {**OK_CHAT, "model": "gpt-9"}, 404, "model"),
        (COMPLETIONS, {"model": "fake"}, 400, "prompt"),
        (COMPLETIONS, {"model": "fake", "prompt": 12}, 400, "prompt"),
        (COMPLETIONS, {"model": "fake", "prompt": ["a"] * 65}, 400, "prompt"),
        (COMPLETIONS, {"model": "fake", "prompt": [[1], []]}, 400, "prompt"),
        (COMPLETIONS, {"model": "fake", "prompt": "y " * 70}, 400, "prompt"),
        (COMPLETIONS, {"model": "fake", "prompt": "hi", "max_tokens": 64}, 400, "max_tokens"),
        (COMPLETIONS, {"model": "nope", "prompt": "hi"}, 404, "model"),
        (COMPLETIONS, {"model": "fake", "prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
        (COMPLETIONS, {"model": "fake", "prompt": "hi", "echo": True, "logprobs": 6}, 400,
         "logprobs"),
        (COMPLETIONS, {"model": "fake", "prompt": "hi", "prompt_logprobs": 1}, 400,
         "prompt_logprobs"),
        (CHAT, {**OK_CHAT, "echo": True}, 400, "echo"),
        (CHAT, {**OK_CHAT, "web_search_options": {}}, 400, "web_search_options"),
        (CHAT, {**OK_CHAT, "stop": ["s"] * 17}, 400, "stop"),
        (CHAT, {**OK_CHAT, "tools": [{"type": "function", "function": {
            "name": "f", "parameters": {"type": "string"}}}]}, 400, "tools.0.function.parameters"),
        (CHAT, {**OK_CHAT, "messages": [
            {"role": "user", "content": "6*7?"}, {"role": "tool", "content": "42"}]}, 400,
         "messages.1.tool_call_id"),
        (CHAT, {**OK_CHAT, "messages": [{"role": "user"}]}, 400, "messages.0.content"),
        (CHAT, {**OK_CHAT, "messages": [{"role": "system", "content": None},
                                        {"role": "user", "content": "x"}]}, 400,
         "messages.0.content"),
        (CHAT, {**OK_CHAT, "stream_options": {"include_usage": True}}, 400, "stream_options"),
        (CHAT, {**OK_CHAT, "stream": False, "stream_options": {}}, 400, "stream_options"),
        (COMPLETIONS, {"model": "fake", "prompt": "hi", "stream_options": {}}, 400,
         "stream_options"),
        (CHAT, {**OK_CHAT, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, 400,
         "messages.0.content"),
        (CHAT, {**OK_CHAT, "logit_bias": {"\u00b2": 10}}, 400, "logit_bias"),
        (CHAT, {**OK_CHAT, "logit_bias": {"\u0665": 10}}, 400, "logit_bias"),
        (COMPLETIONS, {"model": "fake", "prompt": "a " * 64, "max_tokens": 1}, 400, "prompt"),
    ],
)
def test_bad_request_gets_openai_error(
    server: Any, path: str, body: dict[str, Any], status: int, param: str
) -> None:
    resp = httpx.post(server.url + path, json=body, timeout=10)
    err = assert_error(resp, status, param)
    expected_type = "invalid_request_error"
    assert err["type"] == expected_type
    if status == 404:
        assert err["code"] == "model_not_found"
    if status == 400 and "context" in err["message"]:
        assert err["code"] == "context_length_exceeded"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe", b'"str"', b"null"])
def test_malformed_json_is_400(server: Any, raw: bytes) -> None:
    for path in (CHAT, COMPLETIONS):
        resp = httpx.post(server.url + path, content=raw,
                          headers={"content-type": "application/json"}, timeout=10)
        err = assert_error(resp, 400, None)
        assert err["code"] == "invalid_json"


def test_unknown_path_and_method(server: Any) -> None:
    assert_error(httpx.get(server.url + "/v1/nope", timeout=10), 404, None)
    wrong = httpx.get(server.url + CHAT, timeout=10)
    assert_error(wrong, 405, None)
    assert wrong.headers["allow"] == "POST"  # RFC 9110: a 405 names the methods allowed


def test_an_assistant_refusal_in_the_history_is_text_and_only_the_assistants(
        server: Any) -> None:
    refusal = {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}
    body = {"model": "fake", "max_tokens": 2,
            "messages": [{"role": "user", "content": "x"}, refusal,
                         {"role": "user", "content": "y"}]}
    assert httpx.post(server.url + CHAT, json=body, timeout=10).status_code == 200
    body["messages"][0] = {**refusal, "role": "user"}
    err = assert_error(httpx.post(server.url + CHAT, json=body, timeout=10), 400,
                       "messages.0.content")
    assert "refusal" in err["message"]


def test_server_survives_garbage_and_still_serves(server: Any) -> None:
    junk: list[Any] = [{"model": None}, {"messages": [None]}, {"messages": [[]]},
                       {"model": "fake", "messages": [{"role": "user", "content": [{"x": 1}]}]},
                       {"model": "fake", "messages": [{"role": "user", "content": "a"}],
                        "stream_options": "x"}, {"model": {"a": 1}, "prompt": "x"}]
    for body in junk:
        for path in (CHAT, COMPLETIONS):
            resp = httpx.post(server.url + path, content=json.dumps(body), timeout=10)
            assert 400 <= resp.status_code < 500, resp.text
            assert "error" in resp.json()
    ok = httpx.post(server.url + CHAT, json=OK_CHAT, timeout=10)
    assert ok.status_code == 200
    assert ok.json()["usage"]["completion_tokens"] == 3


def test_overload_gets_429_with_retry_after(fake_server_factory: Any) -> None:
    server = fake_server_factory(FakeEngine(delay_s=0.05), max_queue=1)
    body = {**OK_CHAT, "max_tokens": 20}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(await asyncio.gather(
                *(client.post(server.url + CHAT, json=body) for _ in range(5))
            ))

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 2, codes  # one running + one queued
    assert codes.count(429) == 3, codes
    for r in responses:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "queue_full"
    metrics = server.metrics()
    assert metrics["wattserve_requests_queued"] == 0
    assert metrics["wattserve_requests_in_flight"] == 0


def test_not_loaded_gives_503(fake_server_factory: Any) -> None:
    from serving_helpers import LoopbackServer, fake_config

    server = LoopbackServer(fake_config(), engine=FakeEngine(load_s=3.0)).start(wait_ready=False)
    try:
        health = httpx.get(server.url + "/health", timeout=10)
        assert health.status_code == 503
        refused = httpx.post(server.url + CHAT, json=OK_CHAT, timeout=10)
        err = assert_error(refused, 503, None)
        assert err["code"] == "model_not_loaded"
        assert refused.headers["Retry-After"] == "2"  # when to try again, as the 429s say
    finally:
        server.stop()


class _NoTemplate(FakeEngine):
    """Fault injection: a model with no chat template (as a base model's GGUF)."""

    async def render_chat(self, messages: list[dict[str, Any]]) -> Any:
        from wattserve_serving.engines.base import Unsupported

        raise Unsupported("this model's GGUF has no chat template: use /v1/completions")


def test_chat_without_a_chat_template_is_a_400_not_a_500(fake_server_factory: Any) -> None:
    server = fake_server_factory(_NoTemplate(context_length=64))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        err = assert_error(http.post(CHAT, json=OK_CHAT), 400, "model")
        assert err["code"] == "model_not_supported" and "/v1/completions" in err["message"]
        ok = http.post(COMPLETIONS, json={"model": "fake", "prompt": "hi", "max_tokens": 2})
        assert ok.status_code == 200


def test_echo_with_logprobs_on_an_engine_without_prompt_logprobs_is_400(
        fake_server_factory: Any) -> None:
    engine = FakeEngine()
    engine.max_logprobs = 5  # type: ignore[attr-defined]  # generated tokens' only
    server = fake_server_factory(engine)
    body = {"model": "fake", "prompt": "hi", "max_tokens": 1, "logprobs": 1, "echo": True}
    err = assert_error(httpx.post(server.url + COMPLETIONS, json=body, timeout=10), 400, "echo")
    assert err["code"] == "unsupported_parameter"
    ok = httpx.post(server.url + COMPLETIONS, json={**body, "echo": False}, timeout=10)
    assert ok.status_code == 200, ok.text


def test_openai_messages_name_what_is_wrong(server: Any) -> None:
    """Messages that said something else before: pydantic's "valid string" for an image,
    int()'s error for "²", "less than or equal to 2" for NaN, a full context said to be
    over the maximum."""
    def message(path: str, body: dict[str, Any] | bytes) -> str:
        if isinstance(body, bytes):
            resp = httpx.post(server.url + path, content=body, timeout=10,
                              headers={"content-type": "application/json"})
        else:
            resp = httpx.post(server.url + path, json=body, timeout=10)
        assert resp.status_code == 400, resp.text
        return str(resp.json()["error"]["message"])

    image = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    said = message(CHAT, {**OK_CHAT, "messages": [{"role": "user", "content": image}]})
    assert "image inputs are not supported" in said and "valid string" not in said
    said = message(CHAT, {**OK_CHAT, "logit_bias": {"\u00b2": 10}})
    assert "is not a token id" in said and "int()" not in said
    for value in (b"NaN", b"Infinity"):
        raw = json.dumps({**OK_CHAT, "temperature": 0}).encode().replace(b"0}", value + b"}")
        assert "finite number" in message(CHAT, raw)
    said = message(COMPLETIONS, {"model": "fake", "prompt": "a " * 64, "max_tokens": 1})
    assert "has 64 tokens" in said and "leaves 0 for generation" in said, said
    assert "at most 63 prompt tokens" in said


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "user", "content": []}], "messages.0.content"),
    ([{"role": "user", "content": "x"}, {"role": "assistant", "content": []},
      {"role": "user", "content": "y"}], "messages.1.content"),
])
def test_an_empty_content_array_is_400_as_openai(server: Any, messages: list[Any],
                                                  param: str) -> None:
    resp = httpx.post(server.url + CHAT, json={**OK_CHAT, "messages": messages}, timeout=10)
    err = assert_error(resp, 400, param)  # before: 200, answered as an empty message
    assert err["code"] == "empty_array" and "empty array" in err["message"], err


def test_a_prompt_filling_the_context_echoes_with_max_tokens_0(server: Any) -> None:
    body = {"model": "fake", "prompt": "a " * 64, "max_tokens": 0, "echo": True}
    resp = httpx.post(server.url + COMPLETIONS, json=body, timeout=10)
    assert resp.status_code == 200, resp.text  # before: 400, "64 tokens" over "64 tokens"
    assert resp.json()["choices"][0]["text"] == body["prompt"]
    assert resp.json()["usage"]["completion_tokens"] == 0


def test_null_fields_are_their_defaults(server: Any) -> None:
    for path, base, nullable in (
            (CHAT, OK_CHAT, ["n", "stream", "presence_penalty", "frequency_penalty",
                             "parallel_tool_calls"]),
            (COMPLETIONS, {"model": "fake", "prompt": "hi"},
             ["n", "stream", "echo", "presence_penalty", "frequency_penalty", "max_tokens"])):
        omitted = httpx.post(server.url + path, json=base, timeout=10).json()
        for field in nullable:
            resp = httpx.post(server.url + path, json={**base, field: None}, timeout=10)
            assert resp.status_code == 200, (field, resp.text)
            assert resp.json()["choices"] == omitted["choices"], field
            assert resp.json()["usage"] == omitted["usage"], field
    assert omitted["usage"]["completion_tokens"] == 16  # completions' default max_tokens


@pytest.mark.parametrize("path", [CHAT + "/", COMPLETIONS + "/", "/v1/embeddings/"])
def test_a_trailing_slash_is_a_json_404_not_an_empty_redirect(server: Any, path: str) -> None:
    resp = httpx.post(server.url + path, json=OK_CHAT, timeout=10)
    assert_error(resp, 404, None)  # before: 307 with an empty body
