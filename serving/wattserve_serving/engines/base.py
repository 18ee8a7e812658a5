"""The engine protocol every backend implements, and the data it exchanges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class EngineError(Exception):
    """An engine failure that is not the client's fault (HTTP 500)."""


class EngineNotReady(EngineError):
    """The model is not loaded (HTTP 503)."""


class InvalidRequest(EngineError):
    """The engine's own validation refused the request (HTTP 400: the client's to change);
    ``param``: the request parameter it names, when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class Unsupported(EngineError):
    """The request asks for something this model cannot do, e.g. chat from a GGUF with no
    chat template (HTTP 400: the client's to change, not a server failure)."""


@dataclass(frozen=True)
class SamplingParams:
    """Engine-neutral sampling parameters, already validated by the API layer."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False
    # The output must be JSON matching this schema (canonical JSON text); None: free text.
    # Only engines with ``check_json_schema`` (structured outputs) are handed one.
    json_schema: str | None = None
    # Report each generated token's log probability and this many alternatives (None: off).
    # Only engines with ``max_logprobs`` > 0 are handed one.
    logprobs: int | None = None
    # OpenAI's logit_bias: (token id, bias added to its logit) pairs, applied before sampling.
    logit_bias: tuple[tuple[int, float], ...] = ()
    # Report the prompt's own log probabilities with this many alternatives per token
    # (completions ``echo`` with ``logprobs``; None: off). Only engines whose
    # ``prompt_logprobs`` is True are handed one. ``max_tokens`` 0 with it: the prompt only.
    prompt_logprobs: int | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log probability under the model (before temperature, top-k,
    top-p or a grammar), with the most likely alternatives at that step, best first."""

    token: str
    token_bytes: bytes
    logprob: float
    top: tuple[tuple[str, bytes, float], ...] = ()


@dataclass(frozen=True)
class PromptLogprobs:
    """The prompt's own log probabilities: its first token's text (nothing precedes it, so
    it has none) and, for each later prompt token, its log probability given the tokens
    before it, with the alternatives at that position (the same log-softmax as
    `TokenLogprob`)."""

    first: str
    rest: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ChatPrompt:
    """A chat rendered through the model's template."""

    text: str
    stop: tuple[str, ...] = ()
    add_bos: bool = True
    # Token ids when the engine tokenized the chat itself (template markers as special
    # tokens, message contents as plain text); None: the API tokenizes `text`.
    token_ids: list[int] | None = None


@dataclass(frozen=True)
class PreparedPrompt:
    """Prompt text plus the engine tokenizer's ids (the ids are what usage reports)."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text and how many tokens produced it.

    `finish_reason` is set on the last chunk only ("stop" or "length"). When the prompt's
    log probabilities were asked for, the first chunk carries them (`prompt`); it may hold
    no token.
    """

    text: str
    tokens: int
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] = ()  # one per token when asked for (in order)
    prompt: PromptLogprobs | None = None


@runtime_checkable
class Engine(Protocol):
    """What the API layer needs from a backend.

    `generate` must stop producing tokens promptly when the consuming async iterator is
    closed (client disconnect), and must never block the event loop.
    """

    engine_name: str
    context_length: int
    max_concurrency: int

    async def load(self) -> None: ...

    def ready(self) -> bool: ...

    async def render_chat(self, messages: list[dict[str, Any]]) -> ChatPrompt: ...

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]: ...

    def generate(self, prompt: PreparedPrompt, params: SamplingParams) -> AsyncIterator[Chunk]: ...

    async def close(self) -> None: ...


@runtime_checkable
class LoadsEarly(Protocol):
    """An engine whose load runs on a thread of its own, so it can begin before the event
    loop and the web stack exist (llama.cpp): a replica woken from zero then imports its
    server while the model loads. ``load`` awaits that same load; ``load_began`` is when it
    began (``time.perf_counter``), None before."""

    load_began: float | None

    def begin_load(self) -> None: ...


class LoadsOnItsThread:
    """`LoadsEarly` for an engine that loads with ``_load_sync`` on its own one-thread
    ``_executor``: ``begin_load`` from any thread (idempotent), ``load`` awaits that load."""

    _executor: ThreadPoolExecutor
    _load_sync: Callable[[], None]  # the engine's own blocking load
    _loading: Future[None] | None = None
    load_began: float | None = None

    def begin_load(self) -> None:
        if self._loading is None:
            self.load_began = time.perf_counter()
            self._loading = self._executor.submit(self._load_sync)

    async def load(self) -> None:
        self.begin_load()
        assert self._loading is not None
        await asyncio.wrap_future(self._loading)
