"""OpenAI wire-format request schemas (pydantic v2, strict types) and response builders."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wattserve_serving import tools as T
from wattserve_serving.engines.base import PromptLogprobs, TokenLogprob

Role = Literal["system", "developer", "user", "assistant", "tool"]
MAX_CHOICES = 16  # `n`: each choice is a generation of its own on this server's one slot
MAX_PROMPTS = 64  # prompts in one completions request, each generated in turn
MAX_TOP_LOGPROBS = 20  # chat `top_logprobs`, OpenAI's bound
MAX_COMPLETION_LOGPROBS = 5  # completions `logprobs`, OpenAI's bound
MAX_LOGIT_BIAS = 300  # tokens in `logit_bias`, OpenAI's bound
MAX_STOPS = 16  # `stop` strings (OpenAI allows 4; each costs a little per token here)
MAX_STOP_CHARS = 1_000  # one stop string's length (OpenAI sets none; matching holds back
# up to this much text, and checks each of its prefixes per token)


class _Strict(BaseModel):
    # Strict: "5" is not an int, 1 is not a bool. Unknown OpenAI fields are ignored.
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class RefusalPart(_Strict):
    """An assistant's earlier refusal, sent back as history (assistant messages only)."""

    type: Literal["refusal"]
    refusal: str


class ChatMessage(_Strict):
    role: Role
    content: str | list[TextPart | RefusalPart] | None = None
    name: str | None = None
    tool_calls: list[T.ToolCall] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool's result: the call it answers

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text if isinstance(part, TextPart) else part.refusal
                       for part in self.content)


class StreamOptions(_Strict):
    include_usage: bool = False


class JsonSchemaFormat(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(_Strict):
    """OpenAI's ``response_format``: free text, any JSON object, or JSON of a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("'json_schema' is required when type is 'json_schema'")
        return self

    def schema_text(self) -> str | None:
        """The JSON schema the output must match, as compact JSON in the order given (the
        grammar writes an object's properties in that order, as OpenAI does); None: free
        text."""
        if self.type == "text":
            return None
        schema = self.json_schema.schema_ if self.json_schema is not None else None
        if self.type == "json_object" or schema is None:
            schema = {"type": "object"}
        return json.dumps(schema, separators=(",", ":"))


class _SamplingFields(_Strict):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(default=None, ge=0, le=1_000_000)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)  # choices, made one after another
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0, allow_inf_nan=False)
    user: str | None = None
    ignore_eos: bool = False  # extension (vLLM has the same): benchmarks
    response_format: ResponseFormat | None = None  # engines with structured outputs only
    logit_bias: dict[str, float] | None = Field(default=None, max_length=MAX_LOGIT_BIAS)
    # Fields OpenAI marks nullable whose type here is not: an explicit null is the default.
    NULL_IS_DEFAULT: ClassVar[frozenset[str]] = frozenset(
        {"n", "stream", "presence_penalty", "frequency_penalty"})

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: v for k, v in data.items() if v is not None or k not in cls.NULL_IS_DEFAULT}

    @field_validator("stop")
    @classmethod
    def _stops_bounded(cls, stop: str | list[str] | None) -> str | list[str] | None:
        """At most MAX_STOPS strings of at most MAX_STOP_CHARS characters each (a single
        string is one stop, whatever its length up to that)."""
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"{len(stops)} stop strings; at most {MAX_STOPS}")
        longest = max((len(s) for s in stops), default=0)
        if longest > MAX_STOP_CHARS:
            raise ValueError(f"a stop string of {longest} characters; at most "
                             f"{MAX_STOP_CHARS} each")
        return stop

    def logit_bias_pairs(self) -> tuple[tuple[int, float], ...]:
        """(token id, bias) pairs; ValueError naming the first key or value out of bounds."""
        pairs = []
        for key, bias in (self.logit_bias or {}).items():
            if not (key.isascii() and key.strip().isdigit()):  # not "²" or "٥"
                raise ValueError(f"'{key}' is not a token id")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"the bias of token {key} is {bias}; it must be in -100..100")
            pairs.append((int(key), bias))
        return tuple(pairs)

    def answer_schema(self) -> str | None:
        """The JSON schema the answer must match (``response_format``), or None."""
        return self.response_format.schema_text() if self.response_format else None

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return tuple(s for s in stops if s)


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    tools: list[T.Tool] | None = None
    tool_choice: T.ToolChoice | None = None
    parallel_tool_calls: bool = True
    NULL_IS_DEFAULT = _SamplingFields.NULL_IS_DEFAULT | {"parallel_tool_calls"}

    def tool_mode(self) -> T.Mode:
        return T.mode(self.tools, self.tool_choice)

    def answer_schema(self) -> str | None:
        """The JSON schema the answer must match (tools or ``response_format``), or None."""
        how = self.tool_mode()
        if how == "off" or not self.tools:
            return super().answer_schema()
        schema = T.answer_schema(self.tools, how, self.tool_choice, self.parallel_tool_calls)
        return json.dumps(schema, separators=(",", ":"))

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def wanted_logprobs(self) -> int | None:
        """Alternatives to report per token (0: the chosen token only); None: no logprobs."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def logprob_param(self) -> str | None:
        """The log-probability parameter the request turns on, if any."""
        return "logprobs" if self.logprobs else "top_logprobs" if self.top_logprobs else None


class CompletionRequest(_SamplingFields):
    # Text, one text in a list, token ids, or one list of token ids (OpenAI's four forms).
    prompt: str | list[str] | list[int] | list[list[int]] = Field(min_length=1)
    # OpenAI's completions default; 0 (with echo only): the prompt alone, as OpenAI and vLLM.
    max_tokens: int = Field(default=16, ge=0)  # null: 16 too (OpenAI's legacy default)
    echo: bool = False
    NULL_IS_DEFAULT = _SamplingFields.NULL_IS_DEFAULT | {"echo", "max_tokens"}
    logprobs: int | None = Field(default=None, ge=0, le=MAX_COMPLETION_LOGPROBS)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def wanted_logprobs(self) -> int | None:
        return self.logprobs

    def logprob_param(self) -> str | None:
        return None if self.logprobs is None else "logprobs"

    def prompt_list(self) -> list[str | list[int]]:
        """Each prompt: one text, several texts, one list of token ids, or several."""
        return texts_or_ids(self.prompt)


def texts_or_ids(value: str | list[str] | list[int] | list[list[int]]
                 ) -> list[str | list[int]]:
    """OpenAI's four forms of a prompt or input as a list of items: one text, several
    texts, one list of token ids, or several such lists."""
    if isinstance(value, str):
        return [value]
    if all(isinstance(t, int) for t in value):
        return [[t for t in value if isinstance(t, int)]]
    return [item for item in value if isinstance(item, (str, list))]


# OpenAI parameters this server does not implement, with the values that mean "off".
# A request that turns one on gets a 400 naming it instead of a silently different answer.
_OFF: dict[str, tuple[Any, ...]] = {
    "functions": (None, []),
    "function_call": (None, "none", "auto"),
    "best_of": (None, 1),
    "suffix": (None, ""),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "web_search_options": (None,),  # no search here: a 400, not an answer without one
    "guided_json": (None,),
    "guided_regex": (None,),
    "guided_choice": (None,),
    "guided_grammar": (None,),
    "prompt_logprobs": (None,),  # vLLM's extension; `echo` with `logprobs` is OpenAI's way
}
# ... and on the chat endpoint only (vLLM's chat `echo` repeats the last message).
_CHAT_OFF: dict[str, tuple[Any, ...]] = {"echo": (None, False)}


def first_switched_on(body: dict[str, Any], off: Mapping[str, Sequence[object]]) -> str | None:
    """The first parameter of `off` present in `body` with none of its "off" values."""
    for name, values in off.items():
        if name not in body:
            continue
        value = body[name]
        # bool is an int: `best_of: 1` is off, `best_of: True` is not, so compare types.
        if not any(type(value) is type(o) and value == o for o in values):
            return name
    return None


def unsupported_param(body: dict[str, Any], chat: bool = False) -> str | None:
    """The first parameter in `body` that asks for a feature this server lacks."""
    return first_switched_on(body, _OFF | _CHAT_OFF if chat else _OFF)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


Choice = tuple[str, str, dict[str, Any] | None]  # text, finish_reason, logprobs
ChatChoice = tuple[dict[str, Any], str, dict[str, Any] | None]  # message, finish, logprobs


def chat_response(
    rid: str, model: str, choices: list[ChatChoice], usage_: dict[str, int]
) -> dict[str, Any]:
    """A chat completion of ``choices`` (message, finish_reason, logprobs), in index order."""
    return {
        "id": rid,
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [
            {"index": index, "message": {**message, "refusal": None}, "logprobs": logprobs,
             "finish_reason": finish}
            for index, (message, finish, logprobs) in enumerate(choices)
        ],
        "usage": usage_,
    }


def completion_response(
    rid: str, model: str, choices: list[Choice], usage_: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": now(),
        "model": model,
        "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}
                    for index, (text, finish, logprobs) in enumerate(choices)],
        "usage": usage_,
    }


def chat_logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    """A chat choice's ``logprobs``: each token with its bytes and its alternatives."""
    def one(token: str, raw: bytes, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(raw)}

    return {"content": [{**one(e.token, e.token_bytes, e.logprob),
                         "top_logprobs": [one(*alt) for alt in e.top]} for e in entries],
            "refusal": None}


def completion_logprobs(entries: list[TokenLogprob], offset: int,
                        prompt: PromptLogprobs | None = None) -> dict[str, Any]:
    """A completion choice's legacy ``logprobs``; ``offset``: where the first token's text
    starts in the choice's text (characters). With ``prompt`` (``echo``), the prompt's
    tokens come first, from offset 0: the first one with ``null`` log probability and
    alternatives, as OpenAI and vLLM answer. Each ``top_logprobs`` dict holds the
    alternatives and the token itself ("up to logprobs+1 elements", as OpenAI documents and
    vLLM answers)."""
    out: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [],
                                 "text_offset": []}

    def add(token: str, logprob: float | None, top: dict[str, float] | None, at: int) -> int:
        out["tokens"].append(token)
        out["token_logprobs"].append(logprob)
        out["top_logprobs"].append(top)
        out["text_offset"].append(at)
        return at + len(token)

    def one(e: TokenLogprob, at: int) -> int:
        return add(e.token, e.logprob, {token: lp for token, _, lp in e.top} |
                   {e.token: e.logprob}, at)

    if prompt is not None:
        at = add(prompt.first, None, None, 0)
        for e in prompt.rest:
            at = one(e, at)
    for e in entries:
        offset = one(e, offset)
    return out


def _chunk(
    obj: str, rid: str, model: str, created: int, choice: dict[str, Any] | None,
    usage_: dict[str, int] | None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": rid,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [] if choice is None else [choice],
    }
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk


def chat_chunk(
    rid: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    usage_: dict[str, int] | None = None,
    index: int = 0,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = None if delta is None else {
        "index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    return _chunk("chat.completion.chunk", rid, model, created, choice, usage_)


def completion_chunk(
    rid: str,
    model: str,
    created: int,
    text: str | None,
    finish: str | None = None,
    usage_: dict[str, int] | None = None,
    index: int = 0,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    choice = None if text is None else {
        "index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}
    return _chunk("text_completion", rid, model, created, choice, usage_)


def models_list(model: str, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "wattserve"}],
    }
