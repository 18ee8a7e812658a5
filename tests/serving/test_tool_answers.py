"""The pure side of tool calling: an ``auto`` answer's text decoded while it streams, and
the mapping of a held answer to OpenAI's message (tools.py)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from wattserve_serving import tools as T


@given(st.text(), st.lists(st.integers(min_value=1, max_value=9), min_size=1),
       st.booleans(), st.sampled_from(["", " ", "\n  "]))
def test_a_response_decodes_the_same_in_any_chunking(
        said: str, sizes: list[int], ascii_only: bool, pad: str) -> None:
    full = pad + json.dumps({"response": said}, ensure_ascii=ascii_only)
    decoder, out, i, k = T.ResponseText(), "", 0, 0
    while i < len(full):
        size = sizes[k % len(sizes)]
        out += decoder.feed(full[i:i + size])
        i, k = i + size, k + 1
    assert out == said
    assert T.answer(full, "stop", "auto") == ({"role": "assistant", "content": said}, "stop")


def test_a_tool_call_never_leaks_into_the_text() -> None:
    call = json.dumps({"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]})
    decoder = T.ResponseText()
    assert "".join(decoder.feed(c) for c in call) == ""
    message, finish = T.answer(call, "stop", "auto")
    assert finish == "tool_calls" and message["content"] is None
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message["tool_calls"]] == [("add", {"a": 1, "b": 2})]
    assert T.answer(call, "stop", "named")[1] == "stop"  # a forced call, as OpenAI


def test_answers_cut_short_or_not_json_come_back_as_generated() -> None:
    cut = '{"response": "Once upon a ti'
    assert T.answer(cut, "length", "auto") == ({"role": "assistant",
                                                 "content": "Once upon a ti"}, "length")
    calls = '{"tool_calls": [{"name": "ad'
    assert T.answer(calls, "length", "required") == ({"role": "assistant", "content": calls},
                                                      "length")
    assert T.answer("not json", "stop", "auto")[0]["content"] == "not json"
    assert T.answer("plain", "stop", "off") == ({"role": "assistant", "content": "plain"},
                                                "stop")


def test_a_tools_own_pointers_still_resolve_inside_the_answer_schema() -> None:
    params = {"$defs": {"A": {"type": "string"}},
              "properties": {"a": {"$ref": "#/$defs/A"}, "again": {"$ref": "#"}}}
    tool = T.Tool.model_validate({"type": "function",
                                  "function": {"name": "f", "parameters": params}})
    plain = T.Tool.model_validate({"type": "function", "function": {"name": "g"}})
    schema = T.answer_schema([plain, tool], "required", None, True)
    items = schema["properties"]["tool_calls"]["items"]["anyOf"]
    assert items[0]["properties"]["arguments"] == {  # no pointers: inline (no parameters)
        "type": "object", "properties": {}, "additionalProperties": False}
    assert items[1]["properties"]["arguments"] == {"$ref": "#/$defs/tool1"}
    moved = schema["$defs"]["tool1"]
    assert moved["properties"]["a"] == {"$ref": "#/$defs/tool1/$defs/A"}
    assert moved["properties"]["again"] == {"$ref": "#/$defs/tool1"}


def test_a_tool_without_parameters_is_called_with_no_arguments() -> None:
    """OpenAI: "omitting parameters defines a function with an empty parameter list"; an
    explicit empty schema still takes any object."""
    bare = T.Tool.model_validate({"type": "function", "function": {"name": "now"}})
    anything = T.Tool.model_validate({"type": "function",
                                      "function": {"name": "any", "parameters": {}}})
    schema = T.answer_schema([bare, anything], "required", None, True)
    items = schema["properties"]["tool_calls"]["items"]["anyOf"]
    assert items[0]["properties"]["arguments"] == {
        "type": "object", "properties": {}, "additionalProperties": False}
    assert items[1]["properties"]["arguments"] == {"type": "object"}
    told = json.loads(T.system_text([bare], "required", None).split("\n")[0]
                      .removeprefix("You can call these tools: "))
    assert told[0]["parameters"]["additionalProperties"] is False
