"""A request's choices: their order and index, and how engine chunks become each choice's
pieces (text or chat delta, finish_reason, logprobs), streamed or whole."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wattserve_serving import schemas as S
from wattserve_serving import tools as T
from wattserve_serving.engines.base import (
    Chunk,
    PreparedPrompt,
    PromptLogprobs,
    SamplingParams,
    TokenLogprob,
)
from wattserve_serving.prompts import choice_params

Work = list[tuple[PreparedPrompt, SamplingParams]]  # each prompt with its sampling


def each_choice(req: S.ChatCompletionRequest | S.CompletionRequest,
                work: Work) -> Iterator[tuple[int, PreparedPrompt, SamplingParams]]:
    """Choice after choice: ``n`` per prompt, prompt after prompt, indexed as OpenAI does
    (prompt p's choice i is ``p * n + i``)."""
    for p, (prompt, params) in enumerate(work):
        for i in range(req.n):
            yield p * req.n + i, prompt, choice_params(params, i)


def logprobs_of(params: SamplingParams, chat: bool, entries: list[TokenLogprob],
                offset: int, prompt: PromptLogprobs | None = None) -> dict[str, Any] | None:
    """A choice's (or a chunk's) ``logprobs`` in the endpoint's format, the echoed prompt's
    first when given; None when not asked."""
    if params.logprobs is None:
        return None
    return S.chat_logprobs(entries) if chat else S.completion_logprobs(entries, offset, prompt)


def echoes_logprobs(req: S.ChatCompletionRequest | S.CompletionRequest) -> bool:
    """Whether each choice's ``logprobs`` begin with its echoed prompt's."""
    return isinstance(req, S.CompletionRequest) and req.echo and req.logprobs is not None


def tool_mode(req: S.ChatCompletionRequest | S.CompletionRequest) -> T.Mode:
    return req.tool_mode() if isinstance(req, S.ChatCompletionRequest) else "off"


class StreamedChoice:
    """One streamed choice: engine chunks in, the pieces to send out. Log probabilities of
    tokens whose text a stop string holds back ride with the next piece. A tool-holding
    answer is mapped when it ends (``tool_calls``), except the text of an ``auto`` answer
    that responds without a tool, which streams as it is decoded."""

    def __init__(self, chat: bool, params: SamplingParams, how: T.Mode, offset: int = 0) -> None:
        self.chat, self.params, self.how = chat, params, how
        self.held: list[TokenLogprob] = []
        self.offset = offset  # where the next token's text starts (after an echoed prompt)
        self.text: list[str] | None = [] if chat and how != "off" else None
        self.response = T.ResponseText()

    def feed(self, chunk: Chunk) -> tuple[Any, str | None, dict[str, Any] | None] | None:
        self.held.extend(chunk.logprobs)
        if self.text is not None:
            return self._held(chunk)
        if not chunk.text and chunk.finish_reason is None:
            return None
        lp = self._logprobs()
        if self.chat:
            return ({"content": chunk.text} if chunk.text else {}), chunk.finish_reason, lp
        return chunk.text, chunk.finish_reason, lp

    def _held(self, chunk: Chunk) -> tuple[Any, str | None, dict[str, Any] | None] | None:
        assert self.text is not None
        self.text.append(chunk.text)
        said = self.response.feed(chunk.text) if self.how == "auto" else ""
        if chunk.finish_reason is None:
            return ({"content": said}, None, self._logprobs()) if said else None
        message, finish = T.answer("".join(self.text), chunk.finish_reason, self.how)
        if self.response.body is not None:  # a response, streamed as decoded
            return ({"content": said} if said else {}), finish, self._logprobs()
        return T.delta(message), finish, self._logprobs()

    def _logprobs(self) -> dict[str, Any] | None:
        lp = logprobs_of(self.params, self.chat, self.held, self.offset)
        self.offset += sum(len(e.token) for e in self.held)
        self.held = []
        return lp
