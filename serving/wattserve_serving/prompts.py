"""From a validated request to what the engine runs: bounds, prompt tokens, sampling.

The size check runs before admission and costs nothing but counting characters; the
prompt is tokenized after admission, by the engine off the event loop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from wattserve_serving import schemas as S
from wattserve_serving import tools as T
from wattserve_serving.engines.base import Engine, PreparedPrompt, SamplingParams
from wattserve_serving.errors import APIError
from wattserve_serving.schema_limits import check_schema

# Text longer than this many characters per context token cannot fit: refused before
# it is tokenized (tokenizing costs CPU; its cost must stay bounded before admission).
MAX_CHARS_PER_TOKEN = 32


def check_message_count(body: dict[str, Any], ctx: int) -> None:
    """More messages than context tokens cannot fit; refused before they are validated."""
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > ctx:
        raise APIError(
            400,
            f"'messages' has {len(messages)} messages; this model's context of {ctx} tokens "
            "cannot hold them.",
            param="messages",
            code="context_length_exceeded",
        )


def check_content_parts(body: dict[str, Any]) -> None:
    """Content parts other than text (images, audio, files) are refused by name, before
    validation would call them "not a valid string"."""
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind in _NOT_TEXT:
                raise APIError(400, f"Invalid 'messages.{i}.content': {_NOT_TEXT[kind]} "
                               "inputs are not supported by this model (text only).",
                               param=f"messages.{i}.content", code="invalid_value")


_NOT_TEXT = {"image_url": "image", "input_image": "image", "input_audio": "audio",
             "file": "file", "input_file": "file"}


def check_messages(req: S.ChatCompletionRequest | S.CompletionRequest) -> None:
    """What OpenAI refuses in a validated request: a tool result that names no call, a
    message other than the assistant's without content, an empty content array, and
    ``stream_options`` without ``stream`` (as vLLM)."""
    if req.stream_options is not None and not req.stream:
        raise APIError(400, "'stream_options' is only allowed when 'stream' is true.",
                       param="stream_options", code="invalid_value")
    if not isinstance(req, S.ChatCompletionRequest):
        return
    for i, message in enumerate(req.messages):
        if message.role == "tool" and not message.tool_call_id:
            raise APIError(400, f"'messages.{i}.tool_call_id' is required for a message of "
                           "role 'tool' (the call it answers).",
                           param=f"messages.{i}.tool_call_id", code="missing")
        if message.role != "assistant" and message.content is None:
            raise APIError(400, f"'messages.{i}.content' is required for a message of role "
                           f"'{message.role}'.", param=f"messages.{i}.content",
                           code="missing")
        if message.role != "assistant" and isinstance(message.content, list) and any(
                isinstance(part, S.RefusalPart) for part in message.content):
            raise APIError(400, f"Invalid 'messages.{i}.content': a 'refusal' part is only "
                           "allowed in an assistant message.",
                           param=f"messages.{i}.content", code="invalid_value")
        if isinstance(message.content, list) and not message.content:  # as OpenAI
            raise APIError(400, f"Invalid 'messages.{i}.content': empty array. Expected an "
                           "array with minimum length 1, but got an empty array instead.",
                           param=f"messages.{i}.content", code="empty_array")


def check_size(engine: Engine, req: S.ChatCompletionRequest | S.CompletionRequest) -> None:
    """Refuse, before tokenizing, text that cannot fit the context window."""
    ctx = engine.context_length
    if isinstance(req, S.ChatCompletionRequest):
        param = "messages"
        chars = sum(len(m.text()) + len(m.name or "") for m in req.messages)
    else:
        param = "prompt"
        prompts = req.prompt_list()
        if len(prompts) > S.MAX_PROMPTS:
            raise APIError(400, f"Invalid 'prompt': {len(prompts)} prompts; at most "
                           f"{S.MAX_PROMPTS} per request.", param="prompt", code="invalid_value")
        chars = max(len(p) if isinstance(p, str) else 0 for p in prompts)
    limit = ctx * MAX_CHARS_PER_TOKEN
    if chars > limit:
        raise APIError(
            400,
            f"'{param}' has {chars} characters; this model's maximum context length of "
            f"{ctx} tokens holds at most {limit}. Shorten '{param}'.",
            param=param,
            code="context_length_exceeded",
        )


async def prepare(
    engine: Engine, req: S.ChatCompletionRequest | S.CompletionRequest
) -> tuple[list[PreparedPrompt], str]:
    """The request's prompts (chat: one), tokenized; and the parameter that holds them."""
    if isinstance(req, S.ChatCompletionRequest):
        messages = chat_messages(req)
        try:
            chat = await engine.render_chat(messages)
        except (ValueError, TypeError) as exc:
            raise APIError(400, f"Invalid 'messages': {exc}", param="messages") from exc
        ids = chat.token_ids
        if ids is None:
            ids = await engine.tokenize(chat.text, add_bos=chat.add_bos)
        return [PreparedPrompt(chat.text, ids, chat.stop)], "messages"
    prepared = []
    for prompt in req.prompt_list():
        if isinstance(prompt, list):
            prepared.append(await _id_prompt(engine, req, prompt))
            continue
        ids = await engine.tokenize(prompt, add_bos=True)
        if not ids:
            raise APIError(400, "Invalid 'prompt': must not be empty.", param="prompt")
        prepared.append(PreparedPrompt(prompt, ids))
    return prepared, "prompt"


async def _id_prompt(engine: Engine, req: S.CompletionRequest, ids: list[int]) -> PreparedPrompt:
    """A prompt given as token ids: each must be in the vocabulary."""
    if not ids:
        raise APIError(400, "Invalid 'prompt': must not be empty.", param="prompt")
    check_vocabulary(engine, ids, "prompt")
    text = ""
    if req.echo:
        detokenize = getattr(engine, "detokenize", None)
        if detokenize is None:
            raise APIError(
                400, "'echo' with a token-id prompt is not supported by this engine.",
                param="echo", code="unsupported_parameter",
            )
        text = str(await detokenize(ids))
    return PreparedPrompt(text, list(ids))

def sampling(
    engine: Engine, req: S.ChatCompletionRequest | S.CompletionRequest, n_prompt: int, param: str
) -> SamplingParams:
    ctx = engine.context_length
    max_tokens = req.requested_max_tokens()
    if n_prompt > ctx or (n_prompt == ctx and max_tokens != 0):  # 0: echo of the prompt alone
        raise APIError(
            400,
            f"'{param}' has {n_prompt} tokens; this model's maximum context length is {ctx} "
            f"tokens, so it leaves {max(0, ctx - n_prompt)} for generation and at least 1 "
            f"is needed: at most {ctx - 1} prompt tokens. Shorten '{param}'.",
            param=param,
            code="context_length_exceeded",
        )
    if max_tokens is None:
        max_tokens = ctx - n_prompt
    elif n_prompt + max_tokens > ctx:
        name = "max_tokens"
        if isinstance(req, S.ChatCompletionRequest) and req.max_completion_tokens:
            name = "max_completion_tokens"
        raise APIError(
            400,
            f"'{name}' is too large: {max_tokens} + {n_prompt} prompt tokens exceeds this "
            f"model's maximum context length of {ctx} tokens.",
            param=name,
            code="context_length_exceeded",
        )
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=req.top_k or 0,
        stop=req.stop_list(),
        seed=req.seed,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        ignore_eos=req.ignore_eos,
        json_schema=req.answer_schema(),
        logprobs=req.wanted_logprobs(),
        logit_bias=_logit_bias(engine, req),
        prompt_logprobs=req.logprobs if isinstance(req, S.CompletionRequest) and req.echo
        else None,
    )


def _logit_bias(engine: Engine, req: S.ChatCompletionRequest | S.CompletionRequest
                ) -> tuple[tuple[int, float], ...]:
    try:
        pairs = req.logit_bias_pairs()
    except ValueError as exc:
        raise APIError(400, f"Invalid 'logit_bias': {exc}.", param="logit_bias",
                       code="invalid_value") from None
    check_vocabulary(engine, [t for t, _ in pairs], "logit_bias")
    return pairs


def check_vocabulary(engine: object, ids: list[int], param: str) -> None:
    """A 400 naming ``param`` for the first id outside the engine's vocabulary (engines
    that do not tell their vocabulary's size leave the check to their own validation)."""
    vocab_size = getattr(engine, "vocab_size", None)
    if not ids or vocab_size is None:
        return
    size = int(vocab_size())
    bad = next((t for t in ids if not 0 <= t < size), None)
    if bad is not None:
        raise APIError(400, f"Invalid '{param}': token id {bad} is outside the vocabulary "
                       f"(0..{size - 1}).", param=param, code="invalid_value")


def check_max_tokens(req: S.ChatCompletionRequest | S.CompletionRequest) -> None:
    """``max_tokens`` 0 asks for the prompt alone: only with ``echo`` (as vLLM; the API
    refuses 0 on chat already)."""
    if isinstance(req, S.CompletionRequest) and req.max_tokens == 0 and not req.echo:
        raise APIError(400, "Invalid 'max_tokens': 0 is allowed only with 'echo' (the prompt "
                       "alone); it must be at least 1.", param="max_tokens",
                       code="invalid_value")


def check_logprobs(engine: Engine, req: S.ChatCompletionRequest | S.CompletionRequest) -> None:
    """Log probabilities need an engine that reports them (``max_logprobs``), chat's
    ``top_logprobs`` needs ``logprobs: true`` (as OpenAI), and ``echo`` with them an engine
    that computes the prompt's own (``prompt_logprobs``)."""
    param = req.logprob_param()
    if param is None:
        return
    if int(getattr(engine, "max_logprobs", 0)) < max(1, req.wanted_logprobs() or 0):
        raise APIError(
            400, f"'{param}' is not supported by this server's {engine.engine_name} engine; "
            "remove it.", param=param, code="unsupported_parameter")
    if req.wanted_logprobs() is None:
        raise APIError(400, "'top_logprobs' requires 'logprobs' to be true.",
                       param="top_logprobs", code="invalid_value")
    if isinstance(req, S.CompletionRequest) and req.echo and not getattr(
            engine, "prompt_logprobs", False):
        raise APIError(
            400, f"'echo' with 'logprobs' is not supported by this server's "
            f"{engine.engine_name} engine: it does not compute the prompt's log "
            "probabilities.", param="echo", code="unsupported_parameter")


def choice_params(params: SamplingParams, index: int) -> SamplingParams:
    """The sampling of choice ``index`` of ``n``: a request's seed makes the whole set
    reproducible, each choice drawing from a seed of its own (seed + index). The prompt's
    log probabilities (echo) are computed once, with choice 0; the others echo those."""
    if index == 0:
        return params
    seed = None if params.seed is None else (params.seed + index) % 2**64
    return replace(params, seed=seed, prompt_logprobs=None)


def chat_messages(req: S.ChatCompletionRequest) -> list[dict[str, Any]]:
    """The messages for the chat template: tool calls and results written as text, and the
    tools described in the first system message when the answer may call them."""
    messages = [message_dict(m) for m in req.messages]
    how = req.tool_mode()
    if how != "off" and req.tools:
        about = T.system_text(req.tools, how, req.tool_choice)
        if messages and messages[0]["role"] == "system":
            messages[0]["content"] = f"{messages[0]['content']}\n\n{about}".lstrip()
        else:
            messages.insert(0, {"role": "system", "content": about})
    return messages


def message_dict(message: S.ChatMessage) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    content = message.text()
    if message.tool_calls:
        content = T.history_text(content, message.tool_calls)
    elif message.role == "tool":
        content = T.tool_result_text(message.tool_call_id, content)
    out: dict[str, Any] = {"role": role, "content": content}
    if message.name:
        out["name"] = message.name
    return out


async def check_response_format(
    engine: Engine, params: SamplingParams, req: S.ChatCompletionRequest | S.CompletionRequest
) -> None:
    """A JSON ``response_format``, or ``tools``, need an engine with structured outputs and a
    schema it can enforce; otherwise a 400 naming the field before any token is made."""
    if params.json_schema is None:
        return
    field = "response_format"
    if isinstance(req, S.ChatCompletionRequest) and req.tool_mode() != "off":
        field = "tools"
    check = getattr(engine, "check_json_schema", None)
    if check is None:
        raise APIError(
            400,
            f"'{field}' is not supported by this server's {engine.engine_name} "
            "engine; remove it.",
            param=field,
            code="unsupported_parameter",
        )
    try:
        await check(params.json_schema)
    except ValueError as exc:
        raise APIError(400, f"Invalid '{field}': {exc}", param=field,
                       code="invalid_value") from None


def check_tools(req: S.ChatCompletionRequest | S.CompletionRequest) -> None:
    if isinstance(req, S.ChatCompletionRequest):
        formatted = req.response_format is not None and req.response_format.type != "text"
        T.check(req.tools, req.tool_choice, formatted)


def check_schema_bounds(req: S.ChatCompletionRequest | S.CompletionRequest) -> None:
    """Repetition bounds a grammar cannot hold, refused before admission and before any
    converter expands them (`schema_limits`): 400 naming the field."""
    fmt = req.response_format
    schemas: list[tuple[str, Any]] = []
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        schemas.append(("response_format", fmt.json_schema.schema_))
    if isinstance(req, S.ChatCompletionRequest) and req.tool_mode() != "off":
        schemas += [(f"tools.{k}.function.parameters", tool.function.parameters)
                    for k, tool in enumerate(req.tools or [])]
    for param, schema in schemas:
        try:
            check_schema(schema)
        except ValueError as exc:
            raise APIError(400, f"Invalid '{param}': {exc}.", param=param,
                           code="invalid_value") from None
