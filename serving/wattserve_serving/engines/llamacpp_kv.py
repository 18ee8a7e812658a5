"""One llama.cpp request between its tokens, and the KV cache it runs on.

The engine serves several requests on one `Llama` context, one token at a time
(`first_token.py`). A request switched away from keeps a copy of its KV cache
(``llama_state_seq_get_data``, ~23 KiB per token for SmolLM2) and gets it back on resume,
so its numbers, and hence its output, are exactly those of serving it without
interruption, and a resume costs a copy, not a prefill. Past ``SAVE_MAX_TOKENS`` the copy
is skipped and the request's tokens are evaluated again as they were the first time (the
rest of the prompt from its first prefill's start in one batch, then each generated token
alone: llama.cpp's numbers depend on batching). "One batch" is what one ``Llama.eval`` call
does, ``n_batch`` tokens at a time from the first: a prefill is evaluated in those same
blocks, one call each, with the job's cancel flag looked at in between.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from wattserve_serving.engines.base import SamplingParams
from wattserve_serving.engines.stops import StopMatcher

DONE = object()  # emitted after a request's last chunk
# A job switched away from keeps its KV cache up to this many tokens (SmolLM2-135M: ~23 KiB
# per token, so <= ~12 MiB per waiting job); longer ones are evaluated again on resume.
SAVE_MAX_TOKENS = 512


class Generation:
    """One request's state between its tokens (the scheduler may run others in between)."""

    def __init__(self, prompt_ids: list[int], params: SamplingParams, stops: StopMatcher,
                 emit: Callable[[object], None]) -> None:
        self.tokens = prompt_ids  # prompt + generated; the last one not yet evaluated
        self.prompt_len = len(prompt_ids)
        self.prefill_from: int | None = None  # where its first prefill started
        self.saved: tuple[Any, int] | None = None  # its KV cache while another job runs
        self.answered = False  # some text went to the client
        self.closed = False
        self.params = params
        self.stops = stops
        self.emit = emit
        self.cancel = threading.Event()
        self.sampler: Any = None
        self.scored = False  # the prompt's log probabilities were computed (when asked)
        self.produced = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def fail(self, exc: BaseException) -> None:
        self.emit(exc)

    def close(self) -> None:
        self.closed = True
        self.sampler = self.saved = None
        self.emit(DONE)


def ensure_cached(llm: Any, job: Generation, owner: Generation | None) -> bool:
    """Make ``llm``'s context hold ``job.tokens`` with the last one's logits fresh;
    ``owner`` is the job whose tokens the KV cache held until now (already saved aside by
    the caller when it is another, unfinished one). False: ``job.cancel`` was set meanwhile
    and the work stopped (the cache then holds a prefix of the job's tokens).

    A job's first step re-uses the longest prefix already in the KV cache (the shared
    chat template; all of an identical prompt); a resumed job gets its copy back.
    """
    tokens = job.tokens
    if job.saved is not None and restore_state(llm, job):
        return _one_by_one(llm, tokens[llm.n_tokens:], job.cancel)
    cached = llm.input_ids[: llm.n_tokens]
    n = min(len(cached), len(tokens))
    if n:
        diff = np.flatnonzero(cached[:n] != np.asarray(tokens[:n], dtype=cached.dtype))
        n = int(diff[0]) if diff.size else n
    n = min(n, len(tokens) - 1)  # the last token is evaluated again for its logits
    if job.prefill_from is None:
        job.prefill_from = n
    elif owner is not job:
        n = min(n, job.prefill_from)
    if n < llm.n_tokens:
        if n > 0 and llm._ctx.kv_cache_seq_rm(-1, n, -1):
            llm.n_tokens = n
        else:
            llm.reset()
            n = 0
    if n < job.prompt_len:
        if not _in_blocks(llm, tokens[n:job.prompt_len], job.cancel):
            return False
        n = job.prompt_len
    return _one_by_one(llm, tokens[n:], job.cancel)


def _in_blocks(llm: Any, tokens: list[int], cancel: threading.Event) -> bool:
    """``llm.eval(tokens)`` as one call evaluates them, so with the same numbers: `Llama.eval`
    decodes ``n_batch`` tokens at a time from the first, and so do these calls, one block
    each; between blocks ``cancel`` is looked at, so a client that leaves during a long
    prefill frees the engine within a block, not after the whole prompt. False: cancelled."""
    step = max(1, int(llm.n_batch))
    for start in range(0, len(tokens), step):
        if cancel.is_set():
            return False
        llm.eval(tokens[start:start + step])
    return True


def _one_by_one(llm: Any, tokens: list[int], cancel: threading.Event) -> bool:
    """Generated tokens evaluated again, each alone as when it was generated; False:
    cancelled."""
    for token in tokens:
        if cancel.is_set():
            return False
        llm.eval([token])
    return True


def save_state(llm: Any, limit: int | None = SAVE_MAX_TOKENS) -> tuple[Any, int] | None:
    """A copy of the KV cache's tokens (None: empty, more than ``limit``, or failed)."""
    import llama_cpp

    n = int(llm.n_tokens)
    if n == 0 or (limit is not None and n > limit):
        return None
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    if llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0) != size:
        return None
    return buf, n


def restore_state(llm: Any, job: Generation) -> bool:
    """Put ``job``'s saved copy back into the KV cache (False: it did not fit)."""
    import llama_cpp

    saved, job.saved = job.saved, None
    assert saved is not None
    buf, n = saved
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    llm.reset()
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(buf), 0) != len(buf):
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        return False
    llm.input_ids[:n] = job.tokens[:n]
    llm.n_tokens = n
    return True
