"""OpenAI's Responses API (``POST /v1/responses``) read as a chat completion request.

A Responses request is checked here, in its own terms (a 400 names its own parameter:
``input.2.call_id``, ``max_output_tokens``, ``text.format``), then translated into the chat
request the rest of the server already validates, admits and generates: ``instructions``
become a system message, ``input`` items messages (``function_call`` items an assistant
turn's ``tool_calls``, ``function_call_output`` items tool messages), ``text.format`` the
``response_format``, function ``tools`` chat tools. What this server cannot do is refused
by name rather than answered differently: stored responses (``previous_response_id``,
``conversation``, ``item_reference`` items: nothing is stored here), ``background``, prompt
templates, ``truncation: "auto"``, built-in tools (web search, file search, ...), image and
file inputs. ``reasoning`` and other ``include`` values are accepted and have nothing to
add: the models served here produce no reasoning items.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from wattserve_serving.errors import APIError, validate
from wattserve_serving.schemas import first_switched_on

LOGPROBS_INCLUDE = "message.output_text.logprobs"  # the `include` value that asks for them
ITEM_TAGS = frozenset({"message", "function_call", "function_call_output"})


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class InputText(_Strict):
    type: Literal["input_text", "output_text"]  # output_text: an earlier answer sent back
    text: str


class RefusalText(_Strict):
    type: Literal["refusal"]
    refusal: str


def _part_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else None
    return "part:refusal" if kind == "refusal" else "part:text" if kind in (
        "input_text", "output_text") else None


PART_TAGS = frozenset({"part:text", "part:refusal"})
Part = Annotated[Annotated[InputText, Tag("part:text")]
                 | Annotated[RefusalText, Tag("part:refusal")],
                 Discriminator(_part_tag, custom_error_type="invalid_part",
                               custom_error_message="a content part is an object of type "
                               "input_text, output_text or refusal")]


class MessageItem(_Strict):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[Part]


class FunctionCallItem(_Strict):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionOutputItem(_Strict):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[InputText]


def _item_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("type", "message")  # EasyInputMessage: no type
    return kind if kind in ITEM_TAGS else None


Item = Annotated[Annotated[MessageItem, Tag("message")]
                 | Annotated[FunctionCallItem, Tag("function_call")]
                 | Annotated[FunctionOutputItem, Tag("function_call_output")],
                 Discriminator(_item_tag, custom_error_type="invalid_item",
                               custom_error_message="an input item is an object: a message "
                               "(role, content), a function_call or a function_call_output")]


class FunctionTool(_Strict):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(_Strict):
    type: Literal["function"]
    name: str


class TextFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(_Strict):
    format: TextFormat | None = None


class ResponsesRequest(_Strict):
    model: str
    input: str | list[Item]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    stream: bool | None = None
    text: TextConfig | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    include: list[str] | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    user: str | None = None
    store: bool | None = None


# Parameters whose feature this server lacks, with the values that mean "not asked for".
_OFF: dict[str, tuple[Any, ...]] = {
    "previous_response_id": (None,),
    "conversation": (None,),
    "prompt": (None,),
    "background": (None, False),
    "truncation": (None, "disabled"),
}
_WHY = {
    "previous_response_id": "this server stores no responses; send the conversation in "
                            "'input'",
    "conversation": "this server stores no conversations; send them in 'input'",
    "prompt": "this server has no stored prompt templates",
    "background": "this server answers in the request (set stream for early tokens)",
    "truncation": "an input longer than the context is refused, never cut",
}


def unsupported(body: dict[str, Any]) -> None:
    """A 400 naming the first parameter, tool or input item this server cannot honour."""
    name = first_switched_on(body, _OFF)
    if name is not None:
        raise APIError(400, f"'{name}' is not supported: {_WHY[name]}.", param=name,
                       code="unsupported_parameter")
    for i, tool in enumerate(_list(body.get("tools"))):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind != "function":
            raise APIError(400, f"Tool type '{kind}' is not supported by this server; only "
                           "'function' tools are.", param=f"tools.{i}.type",
                           code="unsupported_parameter")
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind != "function":
            raise APIError(400, f"'tool_choice' of type {kind!r} is not supported by this "
                           "server: 'none', 'auto', 'required' or a function.",
                           param="tool_choice.type", code="unsupported_parameter")
        if "name" not in choice:
            raise APIError(400, "'tool_choice.name' is a required property",
                           param="tool_choice.name", code="missing")
    items = body.get("input")
    for i, item in enumerate(_list(items)):
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "item_reference":
            raise APIError(400, "Input items of type 'item_reference' are not supported: "
                           "this server stores no items.", param=f"input.{i}.type",
                           code="unsupported_parameter")
        if isinstance(kind, str) and kind not in ITEM_TAGS:
            raise APIError(400, f"Input items of type '{kind}' are not supported by this "
                           "server.", param=f"input.{i}.type", code="unsupported_parameter")
        for j, part in enumerate(_list(item.get("content")) if kind == "message" else []):
            ptype = part.get("type") if isinstance(part, dict) else None
            if isinstance(ptype, str) and ptype not in ("input_text", "output_text", "refusal"):
                raise APIError(400, f"Content parts of type '{ptype}' are not supported by "
                               "this server (text only).", param=f"input.{i}.content.{j}.type",
                               code="unsupported_parameter")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def read(body: dict[str, Any]) -> ResponsesRequest:
    """The request, or the 400 naming its first offending parameter in Responses terms."""
    unsupported(body)
    return validate(ResponsesRequest, body, tags=ITEM_TAGS | PART_TAGS)


def _text(content: str | list[InputText]) -> str:
    return content if isinstance(content, str) else "".join(p.text for p in content)


def messages(req: ResponsesRequest) -> tuple[list[dict[str, Any]], list[str]]:
    """The chat messages (instructions first, then each input item in order) and, for each,
    the Responses parameter it came from (``instructions``, ``input``, ``input.<i>``)."""
    out: list[dict[str, Any]] = []
    source: list[str] = []
    if req.instructions:
        out.append({"role": "system", "content": req.instructions})
        source.append("instructions")
    if isinstance(req.input, str):
        out.append({"role": "user", "content": req.input})
        source.append("input")
        return out, source
    for i, item in enumerate(req.input):
        if isinstance(item, MessageItem):
            content: Any = item.content
            if not isinstance(content, str):
                content = [{"type": "text", "text": p.text} if isinstance(p, InputText)
                           else {"type": "refusal", "refusal": p.refusal} for p in content]
            out.append({"role": item.role, "content": content})
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
                continue
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            if not any(c["id"] == item.call_id for m in out for c in m.get("tool_calls") or ()):
                raise APIError(400, f"No function_call before input.{i} has call_id "
                               f"{item.call_id!r}.", param=f"input.{i}.call_id",
                               code="invalid_value")
            out.append({"role": "tool", "tool_call_id": item.call_id,
                        "content": _text(item.output)})
        source.append(f"input.{i}")
    return out, source


def response_format(text: TextConfig | None) -> dict[str, Any] | None:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    for field, value in (("name", fmt.name), ("schema", fmt.schema_)):
        if value is None:  # OpenAI's ResponseFormatTextJSONSchemaConfig requires both
            raise APIError(400, f"'text.format.{field}' is a required property",
                           param=f"text.format.{field}", code="missing")
    schema: dict[str, Any] = {"name": fmt.name, "strict": fmt.strict,
                              "description": fmt.description}
    if fmt.schema_ is not None:
        schema["schema"] = fmt.schema_
    return {"type": "json_schema", "json_schema": schema}


def to_chat(req: ResponsesRequest) -> dict[str, Any]:
    """The chat completion request that generates this response."""
    chat: dict[str, Any] = {"model": req.model, "messages": messages(req)[0],
                            "stream": bool(req.stream)}
    if req.max_output_tokens is not None:
        chat["max_completion_tokens"] = req.max_output_tokens
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        value = getattr(req, name)
        if value is not None:
            chat[name] = value
    fmt = response_format(req.text)
    if fmt is not None:
        chat["response_format"] = fmt
    if req.tools:
        chat["tools"] = [{"type": "function", "function": t.model_dump(
            by_alias=True, exclude={"type"}, exclude_none=True)} for t in req.tools]
    if isinstance(req.tool_choice, NamedFunction):
        chat["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice.name}}
    elif req.tool_choice is not None:
        chat["tool_choice"] = req.tool_choice
    if req.include and LOGPROBS_INCLUDE in req.include:
        chat["logprobs"] = True
        chat["top_logprobs"] = req.top_logprobs or 0
    return chat


# Chat parameters as the Responses API names them, for a 400 the chat checks raise.
CHAT_TO_RESPONSES = (
    ("response_format.json_schema", "text.format"),
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
    ("max_tokens", "max_output_tokens"),
    ("top_logprobs", "top_logprobs"),
    ("logprobs", "include"),
)


def param_name(param: str, req: ResponsesRequest) -> str:
    """A chat parameter as the Responses API names it: ``messages.3.content`` is
    ``input.2.content`` when instructions came first, ``tools.0.function.name`` is
    ``tools.0.name``."""
    head, _, rest = param.partition(".")
    if head == "messages":
        index, _, tail = rest.partition(".")
        source = messages(req)[1]
        if not index.isdigit() or int(index) >= len(source):
            return "input"
        named = source[int(index)]
        return f"{named}.{tail}" if tail and named.startswith("input.") else named
    for chat, ours in CHAT_TO_RESPONSES:
        if param == chat or param.startswith(chat + "."):
            return ours + param[len(chat):]
    if head == "tools" and ".function." in param:
        return param.replace(".function.", ".", 1)
    return param


def rename(exc: APIError, req: ResponsesRequest) -> APIError:
    """A chat check's 400 naming the Responses parameter instead of the chat one."""
    if exc.param is None:
        return exc
    param = param_name(exc.param, req)
    return APIError(exc.status, exc.message.replace(f"'{exc.param}'", f"'{param}'"),
                    param=param, code=exc.code, type_=exc.type, headers=exc.headers)
