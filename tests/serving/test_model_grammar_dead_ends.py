"""Structured outputs whose grammar asks for a character no token can give, against the REAL
SmolLM2 served by the `wattserve-serve` CLI as its own process.

Before the fix one such request ended the whole server: llama.cpp's grammar sampler threw
"Unexpected empty grammar stack after accepting piece" through ctypes (std::terminate), so
the connection dropped and every later request was refused. The server runs as a
subprocess here because that failure would abort pytest itself with an in-process server.
Each refusal must be a 400 in OpenAI's error shape, and the server must go on answering.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wattserve.devcluster.processes import free_port

from serving_helpers import smollm2_path, wait_for_health

pytestmark = pytest.mark.model
START_TIMEOUT_S = 120.0
ASK = [{"role": "user", "content": "Reply in JSON."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The CLI's server on a free port: its URL and its log."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    threads = str(max(1, min(2, os.cpu_count() or 1)))
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from wattserve_serving.cli import main; main()",
             "--model", str(smollm2_path()), "--model-name", "smol", "--port", str(port),
             "--context-length", "512", "--threads", threads],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=sink,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(proc, url, log, START_TIMEOUT_S)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _chat(url: str, **fields: Any) -> httpx.Response:
    body = {"model": "smol", "messages": ASK, "max_tokens": 16, "temperature": 0, **fields}
    return httpx.post(url + "/v1/chat/completions", timeout=120,
                      headers={"Content-Type": "application/json"},
                      content=json.dumps(body))


def _schema(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


def _tool(parameters: Any) -> dict[str, Any]:
    return {"tools": [{"type": "function", "function": {"name": "f",
                                                         "parameters": parameters}}],
            "tool_choice": "required"}


def _answers(url: str, log: Path) -> None:
    """The server is up and a plain request still gets its 200."""
    try:
        ok = _chat(url, max_tokens=2)
    except httpx.TransportError as exc:
        pytest.fail(f"the server is gone ({exc!r}): {log.read_text()[-3000:]}")
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("fields", "param", "says"), [
    # the fuzzer's: a const holding U+0000 ended the process
    (dict(response_format=_schema({"const": "\u0000"})), "response_format", "/const"),
    (dict(response_format=_schema({"enum": ["a", "b\u0000"]})), "response_format", "/enum/1"),
    (dict(response_format=_schema({"type": "object", "required": ["k\u0000"], "properties": {
        "k\u0000": {"type": "string"}}})), "response_format", "U+0000"),
    (dict(response_format=_schema({"type": "string", "default": "\u0000"})),
     "response_format", "/default"),
    (_tool({"type": "object", "properties": {"a": {"const": "x\u0000"}}, "required": ["a"]}),
     "tools", "U+0000"),
    # what the converter passes through from a pattern: a NUL, a code point past U+10FFFF,
    # a lone surrogate, a class that holds nothing a model can write
    (dict(response_format=_schema({"type": "string", "pattern": "^a\\x00$"})),
     "response_format", "U+0000"),
    (dict(response_format=_schema({"type": "string", "pattern": "^\\U0FFFFFFF$"})),
     "response_format", "past U+10FFFF"),
    (dict(response_format=_schema({"type": "string", "pattern": "^\\ud800$"})),
     "response_format", "surrogate"),
    (dict(response_format=_schema({"type": "string", "pattern": "^[\\x00]$"})),
     "response_format", "character class"),
    (_tool({"type": "object", "properties": {"a": {"type": "string", "pattern": "^\\x00$"}},
            "required": ["a"]}), "tools", "U+0000"),
])
def test_a_schema_whose_grammar_no_token_can_satisfy_is_400_and_the_server_lives(
        server: tuple[str, Path], fields: dict[str, Any], param: str, says: str) -> None:
    url, log = server
    try:
        resp = _chat(url, **fields)
    except httpx.TransportError as exc:  # before: the process aborted mid-request
        pytest.fail(f"the request ended the server ({exc!r}): {log.read_text()[-3000:]}")
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_value", err
    assert err["param"] == param and says in err["message"], err
    _answers(url, log)


def test_a_character_past_u_ffff_in_an_enum_is_answered_as_that_character(
        server: tuple[str, Path]) -> None:
    """The converter wrote 🎉 as its JSON surrogate pair, which the grammar read as two code
    points UTF-8 cannot hold: the answer was six U+FFFD replacement characters."""
    url, log = server
    resp = _chat(url, response_format=_schema({"enum": ["\U0001F389"]}))
    assert resp.status_code == 200, resp.text
    assert json.loads(resp.json()["choices"][0]["message"]["content"]) == "\U0001F389"
    _answers(url, log)


def test_a_control_character_in_a_const_is_answered_as_json(
        server: tuple[str, Path]) -> None:
    """The converter asked for a raw U+0001 and a raw newline inside the JSON string, an
    answer that does not parse; they are JSON escapes now."""
    url, _ = server
    resp = _chat(url, response_format=_schema({"const": "a\u0001\nb"}))
    assert resp.status_code == 200, resp.text
    assert json.loads(resp.json()["choices"][0]["message"]["content"]) == "a\u0001\nb"


@pytest.mark.parametrize(("schema", "says"), [
    ({"type": "object", "properties": []}, "'properties' at /properties must be an object"),
    ({"type": "object", "properties": {"a": 1}}, "/properties/a is not an object"),
    ({"type": "string", "pattern": 5}, "'pattern' at /pattern must be a string"),
])
def test_a_schema_the_converter_fails_on_is_400_without_python_internals(
        server: tuple[str, Path], schema: Any, says: str) -> None:
    url, log = server
    resp = _chat(url, response_format=_schema(schema))
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert says in message, message  # before: "'list' object has no attribute 'items'"
    assert "object has no attribute" not in message and "Error" not in message
    _answers(url, log)
