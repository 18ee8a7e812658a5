"""Tool calling with the real SmolLM2 model and the official `openai` client: a named
``tool_choice``, ``"required"`` and ``"auto"``, streamed and not, a conversation that carries
tool calls and their results, and the 400s. The 135M model chooses poorly; what is checked is
what the server guarantees: every call names a declared tool, its arguments are JSON that
matches that tool's ``parameters``, and an ``auto`` answer is a call or text, never both."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from serving_helpers import LoopbackServer

pytestmark = pytest.mark.model

WEATHER = {"type": "object", "properties": {"city": {"type": "string"},
                                            "unit": {"type": "string", "enum": ["c", "f"]}},
           "required": ["city", "unit"], "additionalProperties": False}
ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
       "required": ["a", "b"], "additionalProperties": False}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER,
                                      "description": "The weather in a city now."}},
    {"type": "function", "function": {"name": "add", "parameters": ADD,
                                      "description": "Add two integers."}}]
ASK: list[Any] = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]


def _valid_call(call: Any) -> None:
    """A call of a declared tool whose arguments match its parameters."""
    assert call.type == "function" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert set(args) == {"city", "unit"} and isinstance(args["city"], str)
        assert args["unit"] in ("c", "f")
    else:
        assert call.function.name == "add" and set(args) == {"a", "b"}
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in args.values())


def test_a_named_tool_choice_calls_that_tool(client: openai.OpenAI) -> None:
    for seed in (1, 2, 3):
        resp = client.chat.completions.create(
            model="smollm2", messages=ASK, tools=TOOLS, max_tokens=60, seed=seed,
            tool_choice={"type": "function", "function": {"name": "add"}})
        choice = resp.choices[0]
        assert choice.finish_reason == "stop"  # OpenAI's for a forced call
        assert choice.message.content is None and choice.message.tool_calls is not None
        assert [c.function.name for c in choice.message.tool_calls] == ["add"]
        _valid_call(choice.message.tool_calls[0])


def test_a_tool_without_parameters_is_called_with_no_arguments(client: openai.OpenAI) -> None:
    """OpenAI: omitting ``parameters`` defines an empty parameter list (openai-node's
    shared.d.ts); the grammar allows only ``{}``, so the model cannot invent arguments."""
    now = {"type": "function", "function": {"name": "get_time", "description": "The time."}}
    for seed in (1, 2):
        resp = client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "What time is it?"}],
            tools=[now], tool_choice={"type": "function", "function": {"name": "get_time"}},
            max_tokens=40, seed=seed)
        choice = resp.choices[0]
        assert choice.finish_reason == "stop" and choice.message.tool_calls is not None
        assert [json.loads(c.function.arguments) for c in choice.message.tool_calls] == [{}]


def test_required_calls_one_declared_tool_when_parallel_calls_are_off(
        client: openai.OpenAI) -> None:
    for seed in (1, 2):
        resp = client.chat.completions.create(
            model="smollm2", messages=ASK, tools=TOOLS, tool_choice="required",
            parallel_tool_calls=False, max_tokens=60, seed=seed)
        choice = resp.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
        _valid_call(choice.message.tool_calls[0])


def test_auto_answers_with_text_or_valid_calls(client: openai.OpenAI) -> None:
    for seed in (1, 2, 3, 4):
        resp = client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                              max_tokens=80, seed=seed)
        choice = resp.choices[0]
        if choice.finish_reason == "length":
            continue  # cut short: the JSON as generated, as for response_format
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls" and choice.message.content is None
            for call in choice.message.tool_calls:
                _valid_call(call)
        else:
            assert choice.finish_reason == "stop" and isinstance(choice.message.content, str)
            assert not choice.message.content.lstrip().startswith('{"response"')


def test_streamed_tool_calls_equal_the_unstreamed_ones(client: openai.OpenAI) -> None:
    named: Any = {"type": "function", "function": {"name": "get_weather"}}
    whole = client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                           tool_choice=named, max_tokens=60, temperature=0)
    calls: list[Any] = []
    finishes = []
    for chunk in client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                                tool_choice=named, max_tokens=60, temperature=0,
                                                stream=True):
        for c in chunk.choices:
            calls.extend(c.delta.tool_calls or [])
            if c.finish_reason:
                finishes.append(c.finish_reason)
    expected = whole.choices[0].message.tool_calls or []
    assert [(c.index, c.function.name, c.function.arguments) for c in calls if c.function] == \
        [(i, c.function.name, c.function.arguments) for i, c in enumerate(expected)]
    assert finishes == ["stop"]


def test_an_auto_answer_without_a_tool_streams_as_it_is_written(client: openai.OpenAI) -> None:
    ask: Any = [{"role": "user", "content": "What is 2 plus 3?"}]
    client.chat.completions.create(model="smollm2", messages=ask, max_tokens=1)  # warm-up
    whole = client.chat.completions.create(model="smollm2", messages=ask, tools=TOOLS,
                                           max_tokens=60, temperature=0)
    pieces: list[str] = []
    calls: list[Any] = []
    for chunk in client.chat.completions.create(model="smollm2", messages=ask, tools=TOOLS,
                                                max_tokens=60, temperature=0, stream=True):
        for c in chunk.choices:
            pieces += [c.delta.content] if c.delta.content else []
            calls += c.delta.tool_calls or []
    message = whole.choices[0].message
    if message.tool_calls:  # the model chose a tool: sent whole, as the named case
        assert [c.function.name for c in calls if c.function] == \
            [c.function.name for c in message.tool_calls]
        return
    assert "".join(pieces) == message.content and message.content
    assert not message.content.startswith("{")  # the text, not the JSON around it
    assert len(pieces) > 1  # streamed piece by piece, not in one delta at the end


class Address(BaseModel):
    city: str
    country: str


class Person(BaseModel):
    name: str
    home: Address
    work: Address | None


def test_a_pydantic_tool_with_nested_models_is_called_with_valid_arguments(
        client: openai.OpenAI) -> None:
    """pydantic writes nested models as "#/$defs/..." pointers; they must still resolve
    once the tool's parameters sit inside the answer's schema."""
    tool: Any = openai.pydantic_function_tool(Person)
    assert "$defs" in tool["function"]["parameters"]
    resp = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Ada lives in London, UK."}],
        tools=[tool, *TOOLS], max_tokens=120, temperature=0,
        tool_choice={"type": "function", "function": {"name": "Person"}})
    choice = resp.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    (call,) = choice.message.tool_calls or []
    Person.model_validate_json(call.function.arguments)


def test_a_conversation_with_tool_calls_and_results(client: openai.OpenAI) -> None:
    called: list[Any] = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"}]
    short = client.chat.completions.create(model="smollm2", messages=ASK, tools=TOOLS,
                                           max_tokens=1, tool_choice="none")
    resp = client.chat.completions.create(model="smollm2", messages=called, tools=TOOLS,
                                          max_tokens=40, tool_choice="none", seed=1)
    assert resp.choices[0].message.tool_calls is None  # "none": text only
    assert resp.usage is not None and short.usage is not None
    # the call and its result are in the prompt (as JSON text the model can read)
    assert resp.usage.prompt_tokens > short.usage.prompt_tokens + 20


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
    ({"tools": TOOLS, "response_format": {"type": "json_object"}}, "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]},
     "tools.0.function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "weird"}}}}}]}, "tools"),
    ({"tools": [TOOLS[0], {"type": "function", "function": {
        "name": "f", "parameters": {"type": "string"}}}]}, "tools.1.function.parameters"),
])
def test_tool_settings_that_cannot_be_honoured_are_400(
        client: openai.OpenAI, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=2, **kwargs)
    assert err.value.body["param"] == param  # type: ignore[index]


def test_model_server_is_still_healthy(model_server: LoopbackServer) -> None:
    m = model_server.metrics()
    assert m["wattserve_requests_in_flight"] == 0 and m["wattserve_requests_queued"] == 0
