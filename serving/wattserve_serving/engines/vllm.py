"""vLLM engine (GPU) via `vllm.AsyncLLMEngine`; `vllm` is imported only in `load()`.

Written against vllm 0.29.0 (serving/constraints-gpu.txt), where `AsyncLLMEngine` is an
alias of `vllm.v1.engine.async_llm.AsyncLLM`: the model config is the `model_config`
attribute, `get_tokenizer()` is synchronous (awaited when a version makes it a coroutine),
`generate(TokensPrompt, SamplingParams, request_id)` yields CUMULATIVE outputs, `abort` is a
coroutine, `SamplingParams(logprobs=k)` fills each output's sample logprobs (a list, or
`FlatLogprobs`, of {token id: Logprob} by position), `SamplingParams(prompt_logprobs=k)`
fills `RequestOutput.prompt_logprobs` (the same container over the prompt's positions, the
first None; complete once the prefill is, in every cumulative output from then on) and
`structured_outputs` takes `StructuredOutputsParams(json=…)`. tests/serving/vllm_real.py
checks all of it against the real package (xgrammar and llguidance run there for real).

Installed with the `wattserve[gpu]` extra. vLLM batches internally, so many requests
may be in flight at once (`max_concurrency`); its own scheduler queues beyond that.
A closed iterator (client disconnect) aborts the request inside vLLM. The app's own OpenAI
layer (not vLLM's `OpenAIServingChat`) stays in front, so admission, metrics and energy
accounting are the same for both engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any

from wattserve_serving.engines.base import (
    ChatPrompt,
    Chunk,
    EngineError,
    EngineNotReady,
    InvalidRequest,
    PreparedPrompt,
    PromptLogprobs,
    SamplingParams,
    TokenLogprob,
)
from wattserve_serving.engines.logprobs import MAX_LOGPROBS

DEFAULT_MAX_CONCURRENCY = 256


class VLLMEngine:
    engine_name = "vllm"

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        context_length: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tensor_parallel_size = max(1, tensor_parallel_size)
        self.context_length = context_length or 0
        self.max_concurrency = max_concurrency
        self._engine_kwargs = engine_kwargs or {}
        self.max_logprobs = 0  # alternatives per token; vLLM's `max_logprobs` once loaded
        self.prompt_logprobs = True  # the prompt's own too (completions echo)
        self._engine: Any = None
        self._tokenizer: Any = None
        self._vllm: Any = None
        self._structured: Any = None  # vLLM's StructuredOutputsParams, once imported
        self._client_errors: tuple[type[Exception], ...] = ()  # vLLM's VLLMClientError

    async def load(self) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise EngineError("vLLM is not installed (pip install 'wattserve[gpu]')") from exc
        from vllm.sampling_params import StructuredOutputsParams

        self._vllm = vllm
        self._structured = StructuredOutputsParams
        with contextlib.suppress(ImportError):  # vLLM before its 4xx/5xx error split
            from vllm.exceptions import VLLMClientError

            self._client_errors = (VLLMClientError,)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "tensor_parallel_size": self.tensor_parallel_size,
            **self._engine_kwargs,
        }
        if self.context_length:
            kwargs["max_model_len"] = self.context_length
        args = vllm.AsyncEngineArgs(**kwargs)
        engine = vllm.AsyncLLMEngine.from_engine_args(args)
        self._tokenizer = await _maybe_await(engine.get_tokenizer())
        max_len = getattr(engine.model_config, "max_model_len", None)
        if isinstance(max_len, int) and max_len > 0:
            self.context_length = max_len
        limit = getattr(engine.model_config, "max_logprobs", MAX_LOGPROBS)  # -1: the vocab
        self.max_logprobs = (min(limit, MAX_LOGPROBS) if isinstance(limit, int) and limit >= 0
                             else MAX_LOGPROBS)
        self._engine = engine

    def ready(self) -> bool:
        """Loaded and alive: vLLM's engine core can die (a CUDA error, an XID, a worker
        OOM) while the AsyncLLM object stays; ``errored`` says so, as vLLM's own /health
        asks. Not ready then: /health answers 503, the kubelet restarts the pod."""
        engine = self._engine
        return engine is not None and not bool(getattr(engine, "errored", False))

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            await _maybe_await(shutdown())

    def _require(self) -> Any:
        if self._engine is None:
            raise EngineNotReady("model not loaded")
        return self._engine

    async def render_chat(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        self._require()
        try:
            text = self._tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:  # jinja2's TemplateError: the template refused the messages
            raise ValueError(str(exc)) from exc  # (e.g. "System role not supported"): 400
        return ChatPrompt(text=str(text), stop=(), add_bos=False)

    def vocab_size(self) -> int:
        """The tokenizer's vocabulary: token ids outside it (a token-id prompt, logit_bias)
        are a 400 naming the parameter, before vLLM's own validation would fail them."""
        self._require()
        return len(self._tokenizer)

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self._require()
        return list(self._tokenizer.encode(text, add_special_tokens=add_bos))

    async def detokenize(self, ids: list[int]) -> str:
        """Token ids as text (an echoed token-id prompt), special tokens left out as the
        llama.cpp engine does."""
        self._require()
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=True))

    async def check_json_schema(self, schema: str) -> None:
        """ValueError unless vLLM's default ("auto") structured-output backends can enforce
        ``schema``: xgrammar, else llguidance, as vLLM's own request validation tries them
        (its last resort, outlines, is not tried: such a schema is refused here)."""
        self._require()
        await asyncio.to_thread(_check_schema, self._vllm.SamplingParams, self._structured,
                                schema)

    async def generate(
        self, prompt: PreparedPrompt, params: SamplingParams
    ) -> AsyncIterator[Chunk]:
        """The tokens as they come; a request vLLM's own validation refuses (a
        ``VLLMClientError``) is :class:`InvalidRequest`, a 400, not a server failure."""
        try:
            async with contextlib.aclosing(self._generate(prompt, params)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except self._client_errors as exc:
            raise InvalidRequest(str(exc), _param(exc)) from exc

    async def _generate(
        self, prompt: PreparedPrompt, params: SamplingParams
    ) -> AsyncGenerator[Chunk, None]:
        engine = self._require()
        scoring = params.prompt_logprobs is not None
        if params.max_tokens == 0 and not scoring:  # echo of the prompt alone
            yield Chunk("", 0, "length")
            return
        sampling = self._vllm.SamplingParams(
            n=1,
            # 0 (the prompt alone): vLLM computes one token, never sent (as vLLM's own server).
            max_tokens=max(1, params.max_tokens),
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=max(0, params.top_k),  # 0: off (vLLM's canonical value)
            stop=list(params.stop + prompt.stop) or None,
            seed=params.seed,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            ignore_eos=params.ignore_eos,
            logprobs=params.logprobs if params.max_tokens else None,  # raw model log-softmax
            prompt_logprobs=params.prompt_logprobs,  # vLLM's default logprobs_mode
            logit_bias=dict(params.logit_bias) or None,
            structured_outputs=None if params.json_schema is None
            else self._structured(json=params.json_schema),
        )
        request_id = uuid.uuid4().hex
        sent_chars = 0
        sent_tokens = 0
        finished = False
        try:
            stream = engine.generate(
                self._vllm.TokensPrompt(prompt_token_ids=list(prompt.token_ids)),
                sampling,
                request_id,
            )
            async for output in stream:
                scored: PromptLogprobs | None = None
                if scoring:  # the first output with all of the prompt's
                    scored = self._scored(prompt.token_ids, output.prompt_logprobs,
                                          params.prompt_logprobs or 0)
                    if scored is None and not output.finished and not output.outputs[0].token_ids:
                        continue  # a prefill chunk: the rest of the prompt's come later
                    if scored is None:
                        raise EngineError("vLLM returned no prompt logprobs for a request "
                                          "that asked for them")
                    scoring = False
                    if params.max_tokens == 0:
                        finished = bool(output.finished)
                        yield Chunk("", 0, "length", prompt=scored)
                        return
                completion = output.outputs[0]
                text = str(completion.text)
                n_tokens = len(completion.token_ids)
                finish = completion.finish_reason if output.finished else None
                piece, sent_chars = text[sent_chars:], len(text)
                lp: tuple[TokenLogprob, ...] = ()
                if params.logprobs is not None:
                    lp = _token_logprobs(completion.token_ids, completion.logprobs,
                                         range(sent_tokens, n_tokens), params.logprobs)
                produced, sent_tokens = n_tokens - sent_tokens, n_tokens
                if output.finished:
                    finished = True
                    yield Chunk(piece, produced, _finish(finish), lp, scored)
                    return
                if produced or piece or scored is not None:
                    yield Chunk(piece, produced, None, lp, scored)
            finished = True
            yield Chunk("", 0, "stop")
        finally:
            if not finished:
                with contextlib.suppress(Exception):  # the request may already be gone
                    await _maybe_await(engine.abort(request_id))

    def _scored(self, ids: Sequence[int], positions: Sequence[Mapping[int, Any] | None] | None,
                top: int) -> PromptLogprobs | None:
        """Our prompt entries from vLLM's prompt logprobs (position 0 None, then each
        position's {token id: Logprob} of the prompt token and the best by rank); None
        until they cover the whole prompt."""
        if positions is None or len(positions) < len(ids) or not ids:
            return None
        first = str(self._tokenizer.decode([ids[0]], skip_special_tokens=True))
        return PromptLogprobs(first, _token_logprobs(ids, positions, range(1, len(ids)), top))


# vLLM's names of the parameters its validation refuses that are also the request's
_PARAMS = frozenset({"logit_bias", "max_tokens", "temperature", "top_p", "top_k", "seed",
                     "stop", "logprobs", "presence_penalty", "frequency_penalty", "n"})


def _param(exc: Exception) -> str | None:
    name = getattr(exc, "parameter", None)
    return name if isinstance(name, str) and name in _PARAMS else None


def _check_schema(sampling: Any, structured: Any, schema: str) -> None:
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.structured_output.backend_guidance import (
        has_guidance_unsupported_json_features,
        validate_guidance_grammar,
    )
    from vllm.v1.structured_output.backend_xgrammar import validate_xgrammar_grammar

    try:
        params = sampling(structured_outputs=structured(json=schema))
    except (VLLMValidationError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    try:
        validate_xgrammar_grammar(params)
        return
    except (VLLMValidationError, ValueError) as exc:
        first = exc
    if has_guidance_unsupported_json_features(json.loads(schema)):
        raise ValueError(str(first)) from None
    try:
        validate_guidance_grammar(params, tokenizer=None)
    except (VLLMValidationError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _token_logprobs(
    token_ids: Sequence[int], positions: Sequence[Mapping[int, Any] | None] | None,
    new: range, top: int
) -> tuple[TokenLogprob, ...]:
    """Our entries for the ``new`` positions of vLLM's sample logprobs (a list of
    {token id: Logprob(logprob, rank, decoded_token)}, or its FlatLogprobs): each holds
    the sampled token and the ``top`` best by rank (the sampled one also when outside)."""
    if positions is None:
        raise EngineError("vLLM returned no logprobs for a request that asked for them")
    entries = []
    for i in new:
        ranked = positions[i] or {}
        chosen = ranked.get(token_ids[i])
        if chosen is None:
            raise EngineError(f"vLLM's logprobs lack the token at position {i}")
        best = sorted((p for p in ranked.values() if p.rank is not None and p.rank <= top),
                      key=lambda p: int(p.rank))[:top]
        entries.append(TokenLogprob(*_piece(chosen), tuple(_piece(p) for p in best)))
    return tuple(entries)


def _piece(p: Any) -> tuple[str, bytes, float]:
    text = str(p.decoded_token or "")
    # -inf (a token the model rules out) is not JSON: -9999.0, as vLLM's own server writes it.
    return text, text.encode("utf-8"), max(float(p.logprob), -9999.0)


def _finish(reason: object) -> str:
    return "length" if reason == "length" else "stop"


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
