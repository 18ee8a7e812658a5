"""llama.cpp engine (llama-cpp-python on a GGUF file), CPU.

One `Llama` context computes one token at a time, on a single worker thread; the event
loop only receives token pieces via `call_soon_threadsafe`. With ``parallel`` > 1 up to
that many admitted requests share the thread first-token-fairly (`first_token.py`): every
request gets its prefill and first token before any continues its decode, and a request
resumed after another gets its KV cache back (`llamacpp_kv.py`). ``parallel`` 1 serves
requests strictly in turn. Closing the async iterator (client disconnect) sets a cancel
flag the worker checks before every token and between a prompt's blocks of ``n_batch``
tokens, so the work stops within one token or one block of the prefill.

Prompt log probabilities (completions ``echo`` with ``logprobs``) are computed in the
request's first step (`llamacpp_score.py`): the prompt is decoded again in blocks of
bounded logits, around a copy of the KV cache that is put back afterwards, so the request
then generates, and leaves the engine, exactly as without them.

Chat rendering and tokenization run on a second thread (`_prep`), never on the event
loop; so does compiling a ``response_format`` JSON schema into a llama.cpp grammar, which
the request's sampler then enforces token by token (structured outputs). Message contents
are tokenized with `special=False`, so `<|im_start|>` typed by a user is text, not a role
marker; only the chat template's own text yields special tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from wattserve_serving.engines.base import (
    ChatPrompt,
    Chunk,
    EngineError,
    EngineNotReady,
    LoadsOnItsThread,
    PreparedPrompt,
    PromptLogprobs,
    SamplingParams,
    TokenLogprob,
    Unsupported,
)
from wattserve_serving.engines.first_token import FirstTokenScheduler
from wattserve_serving.engines.grammar_check import checked_grammar, misshapen, nul_at
from wattserve_serving.engines.llamacpp_grammar import schema_grammar
from wattserve_serving.engines.llamacpp_kv import DONE, Generation, ensure_cached, save_state
from wattserve_serving.engines.llamacpp_score import score_prompt
from wattserve_serving.engines.logprobs import MAX_LOGPROBS, token_logprob
from wattserve_serving.engines.sampler import sampler_chain
from wattserve_serving.engines.stops import StopMatcher
from wattserve_serving.schema_limits import MAX_GRAMMAR_CHARS

GRAMMARS_KEPT = 64  # compiled grammars kept, by schema text
_LOOSE_CHAR = r'char ::= [^"\\]'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F]'
log = logging.getLogger("wattserve_serving")


class LlamaCppEngine(LoadsOnItsThread):
    engine_name = "llamacpp"

    def __init__(self, model_path: str, threads: int, context_length: int,
                 parallel: int = 1) -> None:
        self.model_path = model_path
        self.max_concurrency = max(1, parallel)
        self.max_logprobs = MAX_LOGPROBS  # alternatives per token it can report
        self.prompt_logprobs = True  # the prompt's own too (completions echo)
        self.threads = threads
        self.context_length = context_length
        self._llm: Any = None
        self._formatter: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._prep = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp-prep")
        self._scheduler: FirstTokenScheduler[Generation] = FirstTokenScheduler(
            self._step, parallel=self.max_concurrency, name="llamacpp")
        self._owner: Generation | None = None  # the job whose tokens the KV cache holds
        self._grammars: dict[str, Any] = {}  # JSON schema text -> LlamaGrammar (bounded)
        self._grammars_lock = threading.Lock()  # the prep thread fills it, the worker reads

    # -- lifecycle ---------------------------------------------------------------
    def _load_sync(self) -> None:
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:  # pragma: no cover - exercised via the CLI message
            raise EngineError(
                "llama-cpp-python is not installed (pip install 'wattserve[cpu]')"
            ) from exc
        llm = Llama(
            model_path=self.model_path,
            n_ctx=self.context_length,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
        self.context_length = llm.n_ctx()
        self._llm = llm

    def ready(self) -> bool:
        return self._llm is not None

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._prep.shutdown(wait=False, cancel_futures=True)
        self._scheduler.stop()
        self._llm = None

    # -- prompts -----------------------------------------------------------------
    def _require(self) -> Any:
        if self._llm is None:
            raise EngineNotReady("model not loaded")
        return self._llm

    async def render_chat(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        self._require()
        if self._formatter is None:
            raise Unsupported("this model's GGUF has no chat template (tokenizer.chat_template): "
                              "use /v1/completions")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prep, self._render_sync, messages)

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self._require()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prep, self._tokenize_sync, text, add_bos, False)

    def vocab_size(self) -> int:
        return int(self._require().n_vocab())

    async def detokenize(self, ids: list[int]) -> str:
        llm = self._require()
        loop = asyncio.get_running_loop()
        raw: bytes = await loop.run_in_executor(self._prep, llm.detokenize, ids)
        return raw.decode("utf-8", errors="replace")

    def _tokenize_sync(self, text: str, add_bos: bool, special: bool) -> list[int]:
        llm = self._require()
        ids: list[int] = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        return ids

    def _render_sync(self, messages: list[dict[str, Any]]) -> ChatPrompt:
        try:
            result = self._formatter(messages=messages)
        except Exception as exc:  # jinja2's TemplateError (raise_exception in templates)
            raise ValueError(str(exc)) from exc
        add_bos = not result.added_special
        stop = tuple(s for s in (result.stop or []) if s)
        ids = self._segmented_ids(messages, add_bos)
        return ChatPrompt(text=result.prompt, stop=stop, add_bos=add_bos, token_ids=ids)

    def _segmented_ids(self, messages: list[dict[str, Any]], add_bos: bool) -> list[int]:
        """Template text with special tokens, each message's content as plain text.

        The template is rendered once more with a random marker in place of each content;
        the text between markers is the template's own.
        """
        nonce = secrets.token_hex(8)
        marked = [{**m, "content": f"@@ws{nonce}m{i}@@"} for i, m in enumerate(messages)]
        rendered: str = self._formatter(messages=marked).prompt
        pieces = re.split(f"@@ws{nonce}m(\\d+)@@", rendered)
        contents = [str(m.get("content") or "") for m in messages]
        found = [int(i) for i in pieces[1::2]]
        wanted = {i for i, c in enumerate(contents) if c}
        if len(found) != len(set(found)) or not wanted <= set(found):
            # The template changed or dropped a content: tokenize it all as plain text.
            log.warning("chat template rewrites message contents; no special tokens")
            return self._tokenize_sync(self._formatter(messages=messages).prompt, add_bos, False)
        ids: list[int] = []
        for n, piece in enumerate(pieces):
            first = not ids and add_bos
            if n % 2 == 0:
                if piece:
                    ids += self._tokenize_sync(piece, first, True)
            else:
                text = contents[int(piece)]
                if text:
                    ids += self._tokenize_sync(text, first, False)
        return ids

    # -- structured outputs ------------------------------------------------------
    async def check_json_schema(self, schema: str) -> None:
        """Compile ``schema`` to a llama.cpp grammar (off the event loop) and keep it for
        the sampler; ValueError when it cannot be enforced."""
        self._require()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._prep, self._grammar, schema)

    def _grammar(self, schema: str) -> Any:
        import llama_cpp

        with self._grammars_lock:
            grammar = self._grammars.get(schema)
        if grammar is not None:
            return grammar
        # A grammar that asks for a character no token gives ends the process when the
        # sampler meets it (`grammar_check`): U+0000 is refused wherever the schema has it.
        nul = nul_at(json.loads(schema))
        if nul is not None:
            raise ValueError(f"the JSON schema holds U+0000 (NUL) at {nul}, which llama.cpp "
                             "cannot generate")
        try:
            grammar = schema_grammar(schema)
        except AssertionError as exc:  # the converter asserts on what it does not know
            raise ValueError(f"the JSON schema cannot be enforced: {exc}") from None
        except Exception:  # AttributeError, TypeError...: a keyword of the wrong kind
            where = misshapen(json.loads(schema)) or (
                "a keyword's value is of a kind the grammar converter does not take")
            raise ValueError(f"the JSON schema cannot be enforced: {where}") from None
        # llama-cpp-python's converter lets a string hold raw control characters (a
        # newline inside a string is not JSON; json.loads refuses it): llama.cpp's own
        # converter excludes them, and so does this.
        grammar._grammar = checked_grammar(grammar._grammar.replace(_LOOSE_CHAR, _JSON_CHAR))
        if len(grammar._grammar) > MAX_GRAMMAR_CHARS:
            raise ValueError(f"the JSON schema's grammar is larger than {MAX_GRAMMAR_CHARS} "
                             "characters (long minItems, minLength or nesting?)")
        parsed = llama_cpp.llama_sampler_init_grammar(
            self._require()._model.vocab, grammar._grammar.encode(), grammar._root.encode())
        if not parsed:
            raise ValueError("the JSON schema's grammar does not parse in llama.cpp")
        llama_cpp.llama_sampler_free(parsed)
        with self._grammars_lock:
            while len(self._grammars) >= GRAMMARS_KEPT:
                self._grammars.pop(next(iter(self._grammars)))
            self._grammars[schema] = grammar
        return grammar

    # -- generation --------------------------------------------------------------
    async def generate(
        self, prompt: PreparedPrompt, params: SamplingParams
    ) -> AsyncIterator[Chunk]:
        self._require()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def emit(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, item)

        stops = StopMatcher(params.stop + prompt.stop)
        job = Generation(list(prompt.token_ids), params, stops, emit)
        self._scheduler.submit(job)
        try:
            while True:
                item = await queue.get()
                if item is DONE:
                    return
                if isinstance(item, BaseException):
                    raise EngineError(f"generation failed: {item}") from item
                assert isinstance(item, Chunk)
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            job.cancel.set()

    def _step(self, job: Generation) -> bool:
        """One token of ``job`` (prefill first when it has none); True when it finished."""
        import llama_cpp

        llm = self._llm
        if llm is None:
            raise EngineNotReady("model not loaded")
        params = job.params
        if not job.tokens:
            raise EngineError("empty prompt: nothing to generate from")
        if params.prompt_logprobs is not None and not job.scored:
            job.scored = True
            prompt = self._score_prompt(job)
            if prompt is None:  # cancelled
                return True
            job.emit(Chunk("", 0, "length" if params.max_tokens == 0 else None, prompt=prompt))
            if params.max_tokens == 0:
                return True
        if params.max_tokens == 0:  # echo of the prompt alone
            job.emit(Chunk("", 0, "length"))
            return True
        if job.sampler is None:
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            grammar = None if params.json_schema is None else self._grammar(params.json_schema)
            job.sampler = sampler_chain(llm, params, grammar, seed)
        owner, self._owner = self._owner, job
        if owner is not None and owner is not job and not owner.closed:
            owner.saved = save_state(llm)
        if not ensure_cached(llm, job, owner):
            return True  # the client left during its prefill: closed as any cancelled job
        token = int(job.sampler.sample(llm._ctx, -1))
        job.tokens.append(token)
        if not params.ignore_eos and llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            job.emit(Chunk(job.stops.flush() + job.decoder.decode(b"", final=True), 0, "stop"))
            return True
        job.produced += 1
        lp = () if params.logprobs is None else (self._logprob(token, params.logprobs),)
        text, stopped = job.stops.feed(job.decoder.decode(llm.detokenize([token])))
        if stopped:
            job.emit(Chunk(text, 1, "stop", lp))
            return True
        if job.produced >= params.max_tokens or len(job.tokens) >= llm.n_ctx():
            job.emit(Chunk(text + job.stops.flush() + job.decoder.decode(b"", final=True), 1,
                           "length", lp))
            return True
        job.answered = job.answered or bool(text)
        job.emit(Chunk(text, 1, None, lp))
        return False

    def _score_prompt(self, job: Generation) -> PromptLogprobs | None:
        """The prompt's log probabilities (None when the job was cancelled meanwhile), around
        a copy of the KV cache that is put back (see `llamacpp_score`)."""
        saved = save_state(self._llm, limit=None) if self._llm.n_tokens else None
        return score_prompt(self._llm, job.tokens[: job.prompt_len],
                            job.params.prompt_logprobs or 0, job.cancel, saved)

    def _logprob(self, token: int, top: int) -> TokenLogprob:
        """``token``'s log probability in the logits the sampler just drew it from."""
        import llama_cpp

        llm = self._llm
        row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1),
                                    shape=(llm.n_vocab(),))
        return token_logprob(row, token, top, lambda t: bytes(llm.detokenize([t])))
