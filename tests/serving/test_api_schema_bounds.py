"""JSON schemas whose repetitions a grammar cannot hold are 400s before any converter runs
(`schema_limits`), through ``response_format`` and ``tools``, against a fake engine: the
bounds are checked by the API before admission, whatever the engine."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
import pytest

from wattserve_serving.schema_limits import MAX_DEPTH, MAX_NESTED, MAX_REPEAT

from serving_fakes import FakeEngine

CHAT = "/v1/chat/completions"
ASK = [{"role": "user", "content": "hi"}]


def arr(items: Any, **bounds: int) -> dict[str, Any]:
    return {"type": "array", "items": items, **bounds}


INT = {"type": "integer"}
ROW = {"type": "object", "properties": {"v": {"type": "string"}}}


@pytest.fixture
def server(fake_server_factory: Any) -> Any:
    return fake_server_factory(FakeEngine(context_length=64))


def _post(server: Any, schema: Any, where: str) -> httpx.Response:
    """The request as Python's json writes it (``-Infinity`` and all)."""
    body: dict[str, Any] = {"model": "fake", "messages": ASK, "max_tokens": 2}
    if where == "tools":
        if schema.get("type") != "object":  # a tool's parameters are an object's
            schema = {"type": "object", "properties": {"x": schema}}
        body["tools"] = [{"type": "function", "function": {"name": "g"}},
                         {"type": "function", "function": {"name": "f", "parameters": schema}}]
    else:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "x", "schema": schema}}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 5000))  # the deepest schemas here nest ~1000 levels
    try:
        content = json.dumps(body)
    finally:
        sys.setrecursionlimit(limit)
    return httpx.post(server.url + CHAT, content=content, timeout=10,
                      headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("where", ["response_format", "tools"])
@pytest.mark.parametrize(("schema", "says"), [
    ({"type": "string", "maxLength": MAX_REPEAT + 1}, "maxLength"),
    ({"type": "string", "minLength": 10**12}, "minLength"),
    ({"type": "object", "maxProperties": 10**9}, "maxProperties"),
    (arr(INT, minContains=10**9), "minContains"),
    ({"type": "object", "properties": {"a": arr(INT, maxItems=10**9)}}, "maxItems"),
    ({"anyOf": [INT, arr(INT, minItems=10**9)]}, "minItems"),
    ({"type": "array", "prefixItems": [arr(INT, maxItems=10**9)]}, "maxItems"),
    ({"type": "object", "additionalProperties": arr(INT, maxItems=10**9)}, "maxItems"),
    ({"$defs": {"big": {"type": "string", "maxLength": 10**9}},
      "type": "object", "properties": {"a": {"$ref": "#/$defs/big"}}}, "maxLength"),
    (arr(arr(arr(INT, maxItems=100), maxItems=100), maxItems=100), "multiply"),
    ({"$defs": {"row": arr(INT, maxItems=1000)}, "type": "object",
      "properties": {"m": arr({"$ref": "#/$defs/row"}, maxItems=1000)}}, "multiply"),
    ({"type": "object", "properties": {"a" * 50_000: arr(ROW, maxItems=10)}}, "larger than"),
    ({"type": "string", "pattern": "^a{0,1000000}$"}, "pattern"),
])
def test_repetitions_a_grammar_cannot_hold_are_400_naming_the_field(
        server: Any, where: str, schema: Any, says: str) -> None:
    resp = _post(server, schema, where)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    param = "tools.1.function.parameters" if where == "tools" else "response_format"
    assert err["param"] == param and err["code"] == "invalid_value", err
    assert says in err["message"], err


@pytest.mark.parametrize("schema", [
    arr(arr(INT, maxItems=10), maxItems=10),
    {"type": "object", "properties": {"tags": arr({"type": "string", "maxLength": 500},
                                                  maxItems=50)}},
    {"type": "string", "maxLength": MAX_REPEAT},
    arr(INT, maxItems=MAX_NESTED // MAX_REPEAT),
    {"$defs": {"n": {"type": "object", "properties": {"k": {"$ref": "#/$defs/n"}}}},
     "$ref": "#/$defs/n"},  # recursive: walked once
])
def test_bounds_a_grammar_can_hold_pass_to_the_engine(server: Any, schema: Any) -> None:
    resp = _post(server, schema, "response_format")
    # The fake engine has no structured outputs: past the bounds, that is the 400.
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "unsupported_parameter", resp.text


def nested(depth: int, leaf: Any, wrap: str) -> Any:
    """``leaf`` inside ``depth`` lists ("list") or objects {"a": …} ("object")."""
    for _ in range(depth):
        leaf = [leaf] if wrap == "list" else {"a": leaf}
    return leaf


@pytest.mark.parametrize("where", ["response_format", "tools"])
@pytest.mark.parametrize("bound", [float("-inf"), float("inf"), -1, 2.5])
def test_a_bound_that_is_not_a_non_negative_integer_is_400_not_500(
        server: Any, where: str, bound: float) -> None:
    resp = _post(server, {"type": "array", "items": INT, "minItems": bound}, where)
    assert resp.status_code == 400, resp.text  # -Infinity before: 500 (OverflowError)
    err = resp.json()["error"]
    assert err["code"] == "invalid_value" and "minItems" in err["message"], err
    assert "OverflowError" not in err["message"]


@pytest.mark.parametrize(("where", "schema"), [
    # the fuzzer's: lists in a response_format, objects or lists in a tool's parameters
    ("response_format", {"a": nested(975, [], "list")}),
    ("tools", {"type": "object", "x": nested(400, 1, "object")}),
    ("tools", {"type": "object", "x": nested(940, 1, "list")}),
    ("response_format", {"type": "object", "properties": {"a": nested(300, INT, "object")}}),
    # a chain of $ref pointers nests as deep as the schemas it goes through
    ("response_format", {"$ref": "#/$defs/a0", "$defs": {
        **{f"a{i}": {"$ref": f"#/$defs/a{i + 1}"} for i in range(2 * MAX_DEPTH)},
        f"a{2 * MAX_DEPTH}": INT}}),
])
def test_a_schema_nested_deeper_than_the_cap_is_400_not_500(
        server: Any, where: str, schema: Any) -> None:
    resp = _post(server, schema, where)
    assert resp.status_code == 400, resp.text  # before: 500 (RecursionError)
    err = resp.json()["error"]
    param = "tools.1.function.parameters" if where == "tools" else "response_format"
    assert err["param"] == param and err["code"] == "invalid_value", err
    assert f"nested more than {MAX_DEPTH} levels" in err["message"], err
    ok = httpx.post(server.url + CHAT, timeout=10,
                    json={"model": "fake", "messages": ASK, "max_tokens": 2})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("where", ["response_format", "tools"])
def test_a_schema_nested_up_to_the_cap_passes_the_walk(server: Any, where: str) -> None:
    # the tools' answer schema wraps parameters in a few levels of its own: still walked
    schema = {"type": "object", "properties": {"a": nested(MAX_DEPTH - 3, INT, "list")}}
    resp = _post(server, schema, where)
    assert resp.status_code == 400, resp.text  # the fake engine has no structured outputs
    assert resp.json()["error"]["code"] == "unsupported_parameter", resp.text
