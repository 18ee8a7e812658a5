"""The Responses API's answer: one ``response`` object, or the typed events that build it.

The request was read by `responses_api` and generated as a chat completion of one choice;
here its answer becomes the Responses API's output items: a ``message`` item holding one
``output_text`` part, and one ``function_call`` item per tool call. Streamed, the events are
OpenAI's: ``response.created`` and ``response.in_progress``, then per item
``response.output_item.added`` ... ``response.output_item.done`` (text as
``response.output_text.delta`` events, a call's arguments as
``response.function_call_arguments.delta``/``.done``), and ``response.completed``, or
OpenAI's ``response.incomplete`` when ``max_output_tokens`` cut the answer (vLLM sends
``response.completed`` either way, which the OpenAI Agents SDK's streamed run takes for
success with a cut answer; openai-python's ``responses.stream`` helper, as with OpenAI
itself, has no final response then); each SSE record with its ``event:`` line and a
``sequence_number``; no ``[DONE]``. A failure after the 200 is an
``error`` event and then ``response.failed``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from wattserve_serving import schemas as S
from wattserve_serving.choices import StreamedChoice, each_choice, tool_mode
from wattserve_serving.engines.base import InvalidRequest
from wattserve_serving.errors import APIError
from wattserve_serving.responses import Admitted, StreamEnd, completed, invalid
from wattserve_serving.responses_api import NamedFunction, ResponsesRequest, rename
from wattserve_serving.streaming import GuardedStreamingResponse

if TYPE_CHECKING:
    from wattserve_serving.openai_api import ServingAPI

log = logging.getLogger("wattserve_serving")
Event = tuple[str, dict[str, Any]]  # type, fields (sequence_number added when sent)


def _id(prefix: str) -> str:
    return S.new_id(prefix).replace("-", "_")


class Output:
    """The output items as the answer is produced, and the stream events announcing them."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.message: dict[str, Any] | None = None  # the message item still open
        self.text: list[str] = []
        self.logprobs: list[dict[str, Any]] = []

    def _at(self) -> dict[str, Any]:
        assert self.message is not None
        return {"item_id": self.message["id"], "output_index": self.items.index(self.message),
                "content_index": 0}

    def add_text(self, delta: str, logprobs: list[dict[str, Any]]) -> list[Event]:
        events: list[Event] = []
        if self.message is None:
            self.message = {"id": _id("msg"), "type": "message", "status": "in_progress",
                            "role": "assistant", "content": []}
            self.items.append(self.message)
            events.append(("response.output_item.added", {
                "output_index": len(self.items) - 1, "item": dict(self.message)}))
            events.append(("response.content_part.added", {**self._at(), "part": {
                "type": "output_text", "text": "", "annotations": [], "logprobs": []}}))
        if delta or logprobs:
            self.text.append(delta)
            self.logprobs.extend(logprobs)
            events.append(("response.output_text.delta", {**self._at(), "delta": delta,
                                                          "logprobs": logprobs}))
        return events

    def add_call(self, call: dict[str, Any]) -> list[Event]:
        function = call.get("function") or {}
        name, arguments = str(function.get("name", "")), str(function.get("arguments", ""))
        item = {"id": _id("fc"), "type": "function_call", "status": "in_progress",
                "call_id": str(call.get("id", "")), "name": name, "arguments": ""}
        self.items.append(item)
        index = len(self.items) - 1
        at = {"item_id": item["id"], "output_index": index}
        events: list[Event] = [("response.output_item.added", {"output_index": index,
                                                              "item": dict(item)})]
        item.update(arguments=arguments, status="completed")
        events.append(("response.function_call_arguments.delta", {**at, "delta": arguments}))
        events.append(("response.function_call_arguments.done", {**at, "name": name,
                                                                 "arguments": arguments}))
        events.append(("response.output_item.done", {"output_index": index,
                                                     "item": dict(item)}))
        return events

    def close(self, incomplete: bool) -> list[Event]:
        """The open message's closing events (an empty message when nothing was said)."""
        events = self.add_text("", []) if not self.items else []
        if self.message is None:
            return events
        text = "".join(self.text)
        part = {"type": "output_text", "text": text, "annotations": [],
                "logprobs": self.logprobs}
        self.message.update(content=[part], status="incomplete" if incomplete else "completed")
        at = self._at()
        events.append(("response.output_text.done", {**at, "text": text,
                                                     "logprobs": self.logprobs}))
        events.append(("response.content_part.done", {**at, "part": part}))
        events.append(("response.output_item.done", {"output_index": at["output_index"],
                                                     "item": dict(self.message)}))
        self.message = None
        return events


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}


class Answer:
    """One response's fixed fields (what was asked, echoed as OpenAI echoes it)."""

    def __init__(self, asked: ResponsesRequest, model: str) -> None:
        self.asked, self.model = asked, model
        self.id, self.created = _id("resp"), S.now()

    def body(self, status: str, output: list[dict[str, Any]], used: dict[str, Any] | None,
             incomplete: bool = False, error: dict[str, Any] | None = None) -> dict[str, Any]:
        a = self.asked
        fmt = a.text.format if a.text is not None else None
        choice: Any = a.tool_choice if a.tool_choice is not None else "auto"
        if isinstance(choice, NamedFunction):
            choice = choice.model_dump()
        return {
            "id": self.id, "object": "response", "created_at": self.created,
            "status": status,
            "completed_at": S.now() if status in ("completed", "incomplete") else None,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": a.instructions, "max_output_tokens": a.max_output_tokens,
            "model": self.model, "output": output,
            "parallel_tool_calls": a.parallel_tool_calls is not False,
            "temperature": 1.0 if a.temperature is None else a.temperature,
            "top_p": 1.0 if a.top_p is None else a.top_p,
            "tool_choice": choice,
            "tools": [t.model_dump(by_alias=True) for t in a.tools or []],
            "text": {"format": fmt.model_dump(by_alias=True, exclude_none=True)
                     if fmt is not None else {"type": "text"}},
            "top_logprobs": a.top_logprobs or 0,
            "metadata": a.metadata or {}, "user": a.user,
            "store": False,  # nothing is stored here (responses_api: no previous_response_id)
            "truncation": "disabled", "previous_response_id": None, "reasoning": None,
            "background": False, "usage": used,
        }


def _lp(logprobs: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list(logprobs.get("content") or []) if logprobs else []


async def complete(api: ServingAPI, admitted: Admitted, asked: ResponsesRequest) -> Response:
    """The whole response, once generated."""
    chat = await completed(api, admitted)
    choice = chat["choices"][0]
    message, finish = choice["message"], choice["finish_reason"]
    out = Output()
    content = message.get("content")
    if content or not message.get("tool_calls"):
        out.add_text(content or "", _lp(choice.get("logprobs")))
    for call in message.get("tool_calls") or []:
        out.add_call(call)
    cut = finish == "length"
    out.close(cut)
    used = usage(chat["usage"]["prompt_tokens"], chat["usage"]["completion_tokens"])
    answer = Answer(asked, api.model_name)
    return JSONResponse(answer.body("incomplete" if cut else "completed", out.items, used, cut))


def _event(kind: str, fields: dict[str, Any], seq: int) -> bytes:
    payload = {"type": kind, **fields, "sequence_number": seq}
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"event: {kind}\ndata: {data}\n\n".encode()


def stream(api: ServingAPI, admitted: Admitted, asked: ResponsesRequest) -> Response:
    """The response's events as tokens come; the status is recorded when the stream
    closes (499 when the client left first)."""
    req, _, work, ticket, start = admitted
    done = StreamEnd(api, admitted)
    answer = Answer(asked, api.model_name)

    async def events() -> AsyncIterator[bytes]:
        seq = 0

        def send(batch: list[Event]) -> list[bytes]:
            nonlocal seq
            sent = [_event(kind, fields, seq + k) for k, (kind, fields) in enumerate(batch)]
            seq += len(batch)
            return sent

        out = Output()
        produced, finish = 0, "stop"
        begun = answer.body("in_progress", [], None)
        for sent in send([("response.created", {"response": begun}),
                             ("response.in_progress", {"response": begun})]):
            yield sent
        try:
            async with ticket:
                for i, prompt, params in each_choice(req, work):  # one choice (n is 1)
                    choice = StreamedChoice(True, params, tool_mode(req))
                    async for chunk in api.tokens(prompt, params, start, i, 1):
                        produced += chunk.tokens
                        piece = choice.feed(chunk)
                        if piece is None:
                            continue
                        delta, finish_, lp = piece
                        finish = finish_ or finish
                        batch: list[Event] = []
                        if delta.get("content") or (lp and not delta.get("tool_calls")):
                            batch += out.add_text(delta.get("content") or "", _lp(lp))
                        for call in delta.get("tool_calls") or []:
                            batch += out.add_call(call)
                        for sent in send(batch):
                            yield sent
            cut = finish == "length"
            closing = out.close(cut)
            used = usage(sum(len(p.token_ids) for p, _ in work), produced)
            final = answer.body("incomplete" if cut else "completed", out.items, used, cut)
            ending = "response.incomplete" if cut else "response.completed"
            for sent in send([*closing, (ending, {"response": final})]):
                yield sent
            done.status = 200
        except Exception as exc:  # after the 200: an error event, then response.failed
            if isinstance(exc, InvalidRequest):
                done.status, error = 400, rename(invalid(exc), asked)
            elif isinstance(exc, APIError):  # refused after the 200 (shutting down)
                done.status, error = exc.status, rename(exc, asked)
            else:
                log.exception("generation failed")
                done.status = 500
                error = APIError(500, "generation failed", type_="server_error")
            out.close(True)  # what was sent stays in the failed response, marked incomplete
            failed = answer.body("failed", out.items, None,
                                 error={"code": error.code or error.type,
                                        "message": error.message})
            for sent in send([("error", {"code": error.code or error.type,
                                         "message": error.message, "param": error.param}),
                              ("response.failed", {"response": failed})]):
                yield sent

    return GuardedStreamingResponse(events(), on_close=done.record)
