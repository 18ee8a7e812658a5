"""Tool calling (OpenAI ``tools`` / ``tool_choice``) on any engine with structured outputs.

The tools are described to the model in a system message, and its answer is held by a JSON
schema (the engine's structured outputs) to ``{"tool_calls": [{"name", "arguments"}]}`` or,
with ``tool_choice: "auto"``, ``{"response": "..."}`` — the generic format llama.cpp's own
server uses for models whose chat template has no tool syntax. The answer is then mapped to
OpenAI's ``tool_calls`` (arguments as a JSON string, ids ``call_…``), so a call always names
a declared tool and its arguments always match that tool's ``parameters``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wattserve_serving.errors import APIError

MAX_TOOLS = 128  # OpenAI's bound
Mode = Literal["off", "auto", "required", "named"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class FunctionDef(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def arguments_schema(self) -> dict[str, Any]:
        """The schema of a call's arguments: OpenAI's "omitting parameters defines a function
        with an empty parameter list" (no argument at all, not any object)."""
        if self.parameters is None:
            return {"type": "object", "properties": {}, "additionalProperties": False}
        return self.parameters or {"type": "object"}


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDef


class FunctionName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class CalledFunction(_Strict):
    name: str
    arguments: str


class ToolCall(_Strict):
    """A call in an assistant message of the conversation so far."""

    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


def mode(tools: list[Tool] | None, choice: ToolChoice | None) -> Mode:
    """How the answer is held: no tools, free to call or answer, must call, must call one."""
    if not tools or choice == "none":
        return "off"
    if isinstance(choice, NamedToolChoice):
        return "named"
    return "required" if choice == "required" else "auto"


def check(tools: list[Tool] | None, choice: ToolChoice | None, formatted: bool) -> None:
    """400s, naming the field, for tool settings that cannot be honoured."""
    names = [t.function.name for t in tools or []]
    if len(names) > MAX_TOOLS:
        raise APIError(400, f"Invalid 'tools': {len(names)} tools; at most {MAX_TOOLS}.",
                       param="tools", code="invalid_value")
    if len(set(names)) != len(names):
        raise APIError(400, "Invalid 'tools': two tools have the same name.", param="tools",
                       code="invalid_value")
    if choice not in (None, "none", "auto") and not names:
        raise APIError(400, "'tool_choice' is set but 'tools' is empty.", param="tool_choice",
                       code="invalid_value")
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        raise APIError(400, f"Invalid 'tool_choice': no tool is named "
                       f"'{choice.function.name}'.", param="tool_choice", code="invalid_value")
    for k, tool in enumerate(tools or []):
        kind = (tool.function.parameters or {}).get("type", "object")
        if kind != "object":  # OpenAI: an object schema; none at all means no arguments
            where = f"tools.{k}.function.parameters"
            raise APIError(400, f"Invalid '{where}': a function's parameters must be a JSON "
                           f"schema of type 'object', not {json.dumps(kind)}.", param=where,
                           code="invalid_value")
    if formatted and mode(tools, choice) != "off":
        raise APIError(400, "'response_format' cannot be combined with 'tools'; use one.",
                       param="response_format", code="invalid_value")


def answer_schema(tools: list[Tool], how: Mode, choice: ToolChoice | None,
                  parallel: bool) -> dict[str, Any]:
    """The JSON schema the model's answer must match."""
    chosen = [t for t in tools if not isinstance(choice, NamedToolChoice)
              or t.function.name == choice.function.name]
    defs: dict[str, Any] = {}
    items = []
    for k, tool in enumerate(chosen):
        arguments = tool.function.arguments_schema()
        if _has_ref(arguments):  # its "#/..." pointers must still find their targets
            defs[f"tool{k}"] = _rebased(arguments, f"#/$defs/tool{k}")
            arguments = {"$ref": f"#/$defs/tool{k}"}
        items.append({"type": "object", "properties": {
            "name": {"const": tool.function.name}, "arguments": arguments},
            "required": ["name", "arguments"], "additionalProperties": False})
    calls: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": items}}
    if how == "named" or not parallel:
        calls["maxItems"] = 1
    calling = {"type": "object", "properties": {"tool_calls": calls},
               "required": ["tool_calls"], "additionalProperties": False}
    schema: dict[str, Any] = calling
    if how == "auto":
        answering = {"type": "object", "properties": {"response": {"type": "string"}},
                     "required": ["response"], "additionalProperties": False}
        schema = {"anyOf": [calling, answering]}
    return {**schema, "$defs": defs} if defs else schema


def _has_ref(value: Any) -> bool:
    stack = [value]
    while stack:  # a stack of its own: no nesting overflows it
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _rebased(value: Any, base: str) -> Any:
    """A tool's ``parameters`` moved under ``base``: its local ``$ref`` pointers ("#",
    "#/$defs/X", "#/properties/…", as pydantic writes them) rewritten to point there.
    A copy made with a stack of its own (no nesting overflows it)."""

    def copy(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            stack.append((node, out))
            return out
        if isinstance(node, list):
            items: list[Any] = []
            stack.append((node, items))
            return items
        return node

    stack: list[tuple[Any, Any]] = []
    root = copy(value)
    while stack:
        source, target = stack.pop()
        if isinstance(source, dict):
            for k, v in source.items():
                target[k] = copy(v)
            ref = source.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                target["$ref"] = base + ref[1:]
        else:
            target.extend(copy(v) for v in source)
    return root


def system_text(tools: list[Tool], how: Mode, choice: ToolChoice | None) -> str:
    """What the model is told about the tools and the answer's format."""
    listed = json.dumps([{"name": t.function.name, "description": t.function.description or "",
                          "parameters": t.function.arguments_schema()}
                         for t in tools], ensure_ascii=False)
    call = '{"tool_calls": [{"name": "TOOL", "arguments": {ARGUMENTS}}]}'
    if how == "named" and isinstance(choice, NamedToolChoice):
        ask = f"Call the tool {choice.function.name}. Reply with JSON only, in this form: {call}"
    elif how == "required":
        ask = f"Call a tool. Reply with JSON only, in this form: {call}"
    else:
        ask = (f"To call a tool, reply with JSON only, in this form: {call}\n"
               'To answer without a tool, reply with JSON only, in this form: '
               '{"response": "YOUR ANSWER"}')
    return f"You can call these tools: {listed}\n{ask}"


def history_text(content: str, calls: list[ToolCall]) -> str:
    """An earlier assistant turn that called tools, as the model would have written it."""
    written = [{"name": c.function.name, "arguments": _loads_or_text(c.function.arguments)}
               for c in calls]
    prefix = content + "\n" if content else ""
    return prefix + json.dumps({"tool_calls": written}, ensure_ascii=False)


def tool_result_text(call_id: str | None, content: str) -> str:
    return json.dumps({"tool_response": {"tool_call_id": call_id or "", "content": content}},
                      ensure_ascii=False)


_RESPONSE = re.compile(r'\{\s*"response"\s*:\s*"')


class ResponseText:
    """The text of an ``auto`` answer of the ``{"response": "..."}`` form, decoded as it is
    generated, so it can be streamed: ``feed`` returns what can be decoded so far (nothing
    while the form is undecided, and never for a tool call). Each character is read once."""

    def __init__(self) -> None:
        self.raw = ""
        self.body: int | None = None  # where the response string's characters start in raw
        self.pos = 0  # raw decoded up to here (a whole number of characters and escapes)
        self.closed = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self.body is None:
            match = _RESPONSE.match(self.raw.lstrip())
            if match is None:
                return ""
            self.body = self.pos = len(self.raw) - len(self.raw.lstrip()) + match.end()
        raw, i, last = self.raw, self.pos, self.pos
        while not self.closed and i < len(raw):
            if raw[i] == '"':
                self.closed = True
                break
            step = 6 if raw.startswith("\\u", i) else 2 if raw[i] == "\\" else 1
            if i + step > len(raw):
                break  # an escape still arriving
            last, i = i, i + step
        if i - last == 6 and raw[last + 2] in "dD" and raw[last + 3] in "89abAB":
            i = last  # half a surrogate pair: wait for the other half
        try:
            text = json.loads(f'"{raw[self.pos:i]}"', strict=False)
        except ValueError:
            return ""
        self.pos = i
        return str(text)


def answer(text: str, finish: str, how: Mode) -> tuple[dict[str, Any], str]:
    """The assistant message and finish_reason for a held answer (``text`` as generated)."""
    plain = {"role": "assistant", "content": text}
    if how == "off":
        return plain, finish
    if finish != "stop":  # cut short ("length"): what a response says so far, else as is
        said = ResponseText().feed(text) if how == "auto" else ""
        return ({"role": "assistant", "content": said} if said else plain), finish
    try:
        value = json.loads(text)
    except ValueError:
        return plain, finish  # a stop string of the request's own cut the JSON
    if isinstance(value, dict) and isinstance(value.get("response"), str):
        return {"role": "assistant", "content": value["response"]}, "stop"
    if not isinstance(value, dict) or not isinstance(value.get("tool_calls"), list):
        return plain, finish
    calls = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
              "function": {"name": str(c.get("name", "")),
                           "arguments": json.dumps(c.get("arguments", {}), ensure_ascii=False)}}
             for c in value["tool_calls"] if isinstance(c, dict)]
    # OpenAI: "tool_calls" when the model chose to call, "stop" when a named call was forced.
    return ({"role": "assistant", "content": None, "tool_calls": calls},
            "stop" if how == "named" else "tool_calls")


def delta(message: dict[str, Any]) -> dict[str, Any]:
    """A streamed chat delta carrying a whole answer: its content or its tool calls."""
    calls = message.get("tool_calls")
    if not calls:
        return {"content": message.get("content") or ""}
    return {"tool_calls": [{"index": j, **call} for j, call in enumerate(calls)]}


def _loads_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
