"""OpenAI's Responses API (`POST /v1/responses`) with the real SmolLM2 model and the official
`openai` client: `client.responses.create` and the `client.responses.stream` helper (which
rebuilds the response from the events and fails on a missing or out-of-order one)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from serving_fakes import FailingEngine

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"], "additionalProperties": False}}]


def test_a_response_is_the_chat_completion_of_the_same_conversation(client: Any) -> None:
    """Instructions become the system message, input the user's: at temperature 0 the
    response says what the chat endpoint says, with the same token counts."""
    answer = client.responses.create(model="smollm2", instructions="Answer in one word.",
                                     input="What is the capital of France?",
                                     max_output_tokens=12, temperature=0)
    chat = client.chat.completions.create(
        model="smollm2", max_completion_tokens=12, temperature=0,
        messages=[{"role": "system", "content": "Answer in one word."},
                  {"role": "user", "content": "What is the capital of France?"}])
    assert answer.object == "response" and answer.id.startswith("resp_")
    assert answer.output_text == chat.choices[0].message.content
    assert "paris" in answer.output_text.lower()
    assert answer.usage.input_tokens == chat.usage.prompt_tokens
    assert answer.usage.output_tokens == chat.usage.completion_tokens
    assert answer.usage.total_tokens == chat.usage.total_tokens
    assert answer.status == "completed" and answer.incomplete_details is None
    assert answer.instructions == "Answer in one word." and answer.max_output_tokens == 12
    [message] = answer.output
    assert message.type == "message" and message.role == "assistant"
    assert message.status == "completed" and message.id.startswith("msg_")


def test_the_stream_builds_the_same_response_event_by_event(client: Any) -> None:
    ask = {"model": "smollm2", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "Name three colours."}]}],
           "max_output_tokens": 10, "temperature": 0}
    whole = client.responses.create(**ask)
    with client.responses.stream(**ask) as events:  # the helper checks each event's place
        seen = list(events)
    final = seen[-1].response  # completed, or incomplete when cut by max_output_tokens
    kinds = [e.type for e in seen]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", f"response.{final.status}"]
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    deltas = "".join(e.delta for e in seen if e.type == "response.output_text.delta")
    # Not compared with `whole`'s text: at temperature 0 llama.cpp's answer still depends
    # on the cached prefix the previous request left (docs/serving.md).
    assert deltas == final.output_text != "" and whole.output_text != ""
    assert 0 < final.usage.output_tokens <= 10
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert seen[0].response.status == "in_progress"


def test_max_output_tokens_cuts_the_answer_as_incomplete(client: Any) -> None:
    cut = client.responses.create(model="smollm2", input="Tell me a long story.",
                                  max_output_tokens=3)
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output[0].status == "incomplete" and cut.usage.output_tokens == 3
    # Streamed, it ends as OpenAI's does: response.incomplete, not response.completed (the
    # OpenAI Agents SDK takes only the former for a cut answer).
    events = list(client.responses.create(model="smollm2", input="Tell me a long story.",
                                          max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete"
    assert "response.completed" not in [e.type for e in events]
    streamed = events[-1].response
    assert streamed.status == "incomplete" and streamed.usage.output_tokens == 3
    assert streamed.incomplete_details.reason == "max_output_tokens"


def test_text_format_json_schema_holds_the_answer_to_the_schema(client: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
              "required": ["city"], "additionalProperties": False}
    answer = client.responses.create(
        model="smollm2", input="Which city is the capital of France? Reply in JSON.",
        text={"format": {"type": "json_schema", "name": "capital", "schema": schema,
                         "strict": True}}, max_output_tokens=40, temperature=0)
    assert answer.status == "completed"
    value = json.loads(answer.output_text)
    assert set(value) == {"city"} and isinstance(value["city"], str)
    assert answer.text.format.type == "json_schema"


def test_function_calls_and_their_outputs_make_a_conversation(client: Any) -> None:
    called = client.responses.create(model="smollm2", input="What is the weather in Paris?",
                                     tools=TOOLS, tool_choice="required",
                                     parallel_tool_calls=False, max_output_tokens=60,
                                     temperature=0)
    [call] = called.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.call_id.startswith("call_") and call.status == "completed"
    assert isinstance(json.loads(call.arguments)["city"], str)
    follow = client.responses.create(
        model="smollm2", max_output_tokens=24, temperature=0,
        input=[{"role": "user", "content": "What is the weather in Paris?"},
               call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id,
                "output": "sunny, 21 C"}])
    assert follow.output[0].type == "message" and follow.output_text
    with client.responses.stream(model="smollm2", input="Weather in Rome?", tools=TOOLS,
                                 tool_choice={"type": "function", "name": "get_weather"},
                                 max_output_tokens=60, temperature=0) as events:
        kinds = [e.type for e in events]
        final = events.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    assert final.output[0].type == "function_call" and final.output[0].name == "get_weather"


def test_logprobs_come_when_included(client: Any) -> None:
    answer = client.responses.create(model="smollm2", input="Hi", max_output_tokens=3,
                                     include=["message.output_text.logprobs"], top_logprobs=2)
    logprobs = answer.output[0].content[0].logprobs
    assert len(logprobs) == answer.usage.output_tokens == 3
    assert all(len(lp.top_logprobs) == 2 and lp.logprob <= 0 for lp in logprobs)


@pytest.mark.parametrize(("ask", "param"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"background": True}, "background"),
    ({"truncation": "auto"}, "truncation"),
    ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image",
                                              "image_url": "http://127.0.0.1/x.png"}]}]},
     "input.0.content.0.type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0.type"),
    ({"input": [{"role": "user", "content": "a"}, {"type": "function_call", "name": "f",
                                                   "arguments": "{}"}]}, "input.1.call_id"),
    ({"input": [{"role": "user", "content": "a"}, 5]}, "input.1"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x " * 2000}, "input"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice.name"),
    ({"tools": TOOLS, "tool_choice": {"type": "allowed_tools", "mode": "auto",
                                      "tools": []}}, "tool_choice.type"),
    ({"input": [{"role": "user", "content": "a"},
                {"type": "function_call_output", "call_id": "call_x", "output": "1"}]},
     "input.1.call_id"),
    ({"tools": [{"type": "function", "name": "bad name"}]}, "tools.0.name"),
])
def test_what_cannot_be_honoured_is_a_400_naming_the_responses_parameter(
        client: Any, ask: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**{"model": "smollm2", "input": "x", **ask})
    assert caught.value.body["param"] == param, caught.value.body


def test_a_failure_mid_stream_is_an_error_event_then_response_failed(
        fake_server_factory: Any) -> None:
    """Fault injection (a fake engine that raises after two tokens): the 200 is sent, so
    the stream ends with `error` and `response.failed`, never cut off."""
    server = fake_server_factory(FailingEngine())
    body = {"model": "fake", "input": "a", "max_output_tokens": 5, "stream": True}
    with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=10) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    kinds = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    data = [json.loads(line.removeprefix("data: ")) for line in lines
            if line.startswith("data: ")]
    assert kinds == [d["type"] for d in data] and kinds[-2:] == ["error", "response.failed"]
    assert data[-1]["response"]["status"] == "failed"
    assert data[-1]["response"]["error"]["code"] == "server_error"
    [message] = data[-1]["response"]["output"]  # what was streamed stays, marked incomplete
    assert message["status"] == "incomplete" and message["content"][0]["text"] == "w0 w1 "
    assert any(k.endswith("status=500}") for k in server.metrics())
