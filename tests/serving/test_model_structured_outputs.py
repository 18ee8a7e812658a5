"""Structured outputs (``response_format``) with the real SmolLM2 model and the official
`openai` client: JSON mode, a JSON schema (also through the client's pydantic ``parse``),
streamed, and the 400s for a schema that cannot be enforced. The 135M model writes poor
JSON on its own; every answer that finished here parses, so the grammar is what holds."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from serving_helpers import LoopbackServer

pytestmark = pytest.mark.model

CITY = {"type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"},
                       "coastal": {"type": "boolean"}},
        "required": ["city", "population", "coastal"], "additionalProperties": False}
ASK = [{"role": "user", "content": "Name a city, its population and whether it is on the "
                                    "coast, as JSON."}]


def _city(value: Any) -> None:
    assert isinstance(value, dict) and set(value) == {"city", "population", "coastal"}
    assert isinstance(value["city"], str)
    assert isinstance(value["population"], int) and not isinstance(value["population"], bool)
    assert isinstance(value["coastal"], bool)


def test_json_mode_answers_a_json_object(client: openai.OpenAI) -> None:
    for seed in (1, 2, 3):
        resp = client.chat.completions.create(
            model="smollm2", messages=ASK, max_tokens=120, seed=seed,  # type: ignore[arg-type]
            response_format={"type": "json_object"})
        choice = resp.choices[0]
        if choice.finish_reason == "stop":  # "length": cut short, as OpenAI documents
            assert isinstance(json.loads(choice.message.content or ""), dict)


def test_a_json_schema_is_followed(client: openai.OpenAI) -> None:
    finished = 0
    for seed in (1, 2, 3):
        resp = client.chat.completions.create(
            model="smollm2", messages=ASK, max_tokens=120, seed=seed,  # type: ignore[arg-type]
            response_format={"type": "json_schema",
                             "json_schema": {"name": "city", "schema": CITY, "strict": True}})
        if resp.choices[0].finish_reason == "stop":
            finished += 1
            answer = json.loads(resp.choices[0].message.content or "")
            _city(answer)
            assert list(answer) == list(CITY["properties"])  # in the schema's order
    assert finished >= 1


class City(BaseModel):
    city: str
    population: int
    coastal: bool


def test_the_clients_pydantic_parse_gets_its_model(client: openai.OpenAI) -> None:
    resp = client.beta.chat.completions.parse(model="smollm2", messages=ASK,  # type: ignore[arg-type]
                                              max_tokens=120, seed=1, response_format=City)
    parsed = resp.choices[0].message.parsed
    assert isinstance(parsed, City)


def test_a_streamed_answer_is_json_of_the_schema(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2", messages=ASK, max_tokens=120, seed=1, stream=True,  # type: ignore[arg-type]
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}})
    text, finish = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "stop"
    _city(json.loads(text))


def test_completions_take_a_response_format_too(model_server: LoopbackServer) -> None:
    resp = httpx.post(model_server.url + "/v1/completions", timeout=120, json={
        "model": "smollm2", "prompt": "A fruit as JSON:", "max_tokens": 60, "seed": 4,
        "response_format": {"type": "json_schema", "json_schema": {"name": "fruit", "schema": {
            "type": "object", "properties": {"name": {"type": "string", "maxLength": 20}},
            "required": ["name"]}}}})
    assert resp.status_code == 200, resp.text
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert isinstance(json.loads(choice["text"])["name"], str)


@pytest.mark.parametrize(("response_format", "message"), [
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "weird"}}},
     "cannot be enforced"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "array", "items": {"type": "string", "minLength": 9999}, "minItems": 9999}}},
     "larger than"),
    ({"type": "json_schema"}, "'json_schema' is required"),
    ({"type": "json_schema", "json_schema": {"name": "not a name"}}, "name"),
    ({"type": "xml"}, "type"),
])
def test_a_schema_that_cannot_be_enforced_is_a_400(client: openai.OpenAI,
                                                   response_format: dict[str, Any],
                                                   message: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=4,  # type: ignore[arg-type]
                                       response_format=response_format)  # type: ignore[arg-type]
    body: Any = info.value.body
    assert body["param"].startswith("response_format"), body
    assert message in body["message"], body
    # the server is unharmed
    ok = client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=2)  # type: ignore[arg-type]
    assert ok.choices[0].finish_reason in ("stop", "length")


def _peak_rss_kb() -> int:
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return int(status["VmHWM"].split()[0])


def _huge_array_schema(n: int) -> dict[str, Any]:
    return {"type": "object", "properties": {
        "a": {"type": "array", "items": {"type": "integer"}, "maxItems": n}}}


@pytest.mark.parametrize("where", ["response_format", "tools"])
def test_a_huge_repetition_bound_is_refused_at_once_without_memory(
        model_server: LoopbackServer, where: str) -> None:
    body: dict[str, Any] = {"model": "smollm2", "messages": ASK, "max_tokens": 4}
    if where == "tools":
        body["tools"] = [{"type": "function", "function": {
            "name": "f", "parameters": _huge_array_schema(10**9)}}]
    else:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "x", "schema": _huge_array_schema(10**9)}}
    with httpx.Client(base_url=model_server.url, timeout=120) as http:
        http.get("/health")
        with open("/proc/self/clear_refs", "w") as f:  # the peak RSS starts from now
            f.write("5")
        before = _peak_rss_kb()
        began = time.perf_counter()
        resp = http.post("/v1/chat/completions", json=body)
        took = time.perf_counter() - began
        grown_kb = _peak_rss_kb() - before
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["param"].startswith(where) and err["code"] == "invalid_value", err
    assert took < 0.5, took  # before: the converter wrote the repetitions out first
    assert grown_kb < 8 * 1024, grown_kb  # before: +1.7 GB for maxItems 3e7
    assert "maxItems" in err["message"], err


def test_a_small_repetition_bound_is_followed(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {
        "type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 5}},
        "required": ["a"], "additionalProperties": False}
    resp = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "A list of numbers as JSON."}],
        max_tokens=80, seed=1, response_format={  # type: ignore[arg-type]
            "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert resp.choices[0].finish_reason == "stop"
    answer = json.loads(resp.choices[0].message.content or "")
    assert 1 <= len(answer["a"]) <= 5 and all(isinstance(v, int) for v in answer["a"])


def test_values_holding_a_backslash_or_a_quote_are_answered_as_that_json(
        client: openai.OpenAI) -> None:
    """A const/enum value or property name with a backslash or a quote: the answer is the
    value's JSON (llama-cpp-python's converter left the backslash of every JSON escape to be
    read as the grammar's own: const "a\\b" was answered as "a\b", a backspace, and an enum
    value with a quote wrote a grammar that did not parse, a 400)."""
    schema = {"type": "object",
              "properties": {"path": {"const": "C:\\temp\\n"},
                             'say "hi"': {"enum": ['x"y', "a\\b"]}},
              "required": ["path", 'say "hi"'], "additionalProperties": False}
    resp = client.chat.completions.create(
        model="smollm2", messages=ASK, max_tokens=60, seed=1,  # type: ignore[arg-type]
        response_format={"type": "json_schema",
                         "json_schema": {"name": "escapes", "schema": schema}})
    assert resp.choices[0].finish_reason == "stop", resp
    answer = json.loads(resp.choices[0].message.content or "")
    assert answer["path"] == "C:\\temp\\n"
    assert answer['say "hi"'] in ('x"y', "a\\b")
