"""Prompt log probabilities on llama.cpp (completions ``echo`` with ``logprobs``).

The KV cache is copied aside (by the engine), the prompt is decoded from position 0 in
blocks of ``PROMPT_LOGITS_BYTES`` of logits (every position's logits asked for, with
llama.cpp's batch API; the context keeps a logits buffer of one block; no used row from a
one-token batch, see ``PROMPT_BLOCK_MIN``), each block's rows are turned into log
probabilities before the next block overwrites them, and the copy is put back: the cache,
its tokens and hence every later answer are those of never having scored the prompt (the
request's own generation then evaluates its prompt as any request does). The cost is a
second evaluation of the prompt, plus the copy (bounded by the KV cache's size).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from wattserve_serving.engines.base import PromptLogprobs, TokenLogprob
from wattserve_serving.engines.logprobs import token_logprobs

# The prompt's log probabilities are computed from the logits of this many bytes of prompt
# positions at a time (SmolLM2, 49,152 tokens: 42 positions), never the whole prompt's.
PROMPT_LOGITS_BYTES = 8 * 2**20
# ... but never fewer positions than this: llama.cpp computes a batch of one token by another
# path, whose numbers differ (SmolLM2: by up to 0.26 in a prompt token's log probability);
# batches of 2 or more agree with one another and with a whole-prompt `logits_all` pass.
# (The prompt's last block may hold one token: its last row scores no prompt token.)
PROMPT_BLOCK_MIN = 2
log = logging.getLogger("wattserve_serving")


def score_prompt(llm: Any, tokens: list[int], top: int, cancel: threading.Event,
                 saved: tuple[Any, int] | None) -> PromptLogprobs | None:
    """The log probability of each prompt token after the ones before it, with ``top``
    alternatives (None when ``cancel`` was set meanwhile); ``saved`` is the engine's copy
    of the KV cache, put back afterwards."""
    import llama_cpp
    from llama_cpp import _internals

    n_vocab = int(llm.n_vocab())
    block = max(PROMPT_BLOCK_MIN, min(int(llm.n_batch), PROMPT_LOGITS_BYTES // (4 * n_vocab)))
    pieces: dict[int, bytes] = {}

    def piece(token: int) -> bytes:
        if token not in pieces:
            pieces[token] = bytes(llm.detokenize([token]))
        return pieces[token]

    first = piece(tokens[0]).decode("utf-8", errors="replace")
    if len(tokens) == 1:
        return PromptLogprobs(first)
    entries: list[TokenLogprob] = []
    batch = _internals.LlamaBatch(n_tokens=block, embd=0, n_seq_max=1)
    try:
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        for start in range(0, len(tokens), block):
            end = min(start + block, len(tokens))
            if cancel.is_set():
                return None
            batch.set_batch(tokens[start:end], n_past=start, logits_all=True)
            llm._ctx.decode(batch)
            rows = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm._ctx.ctx),
                                         shape=(end - start, n_vocab))
            following = tokens[start + 1: end + 1]  # the last row scores no prompt token
            entries += token_logprobs(rows[: len(following)], following, top, piece)
    finally:
        batch.close()  # type: ignore[no-untyped-call]
        put_back(llm, saved)
    return PromptLogprobs(first, tuple(entries))


def put_back(llm: Any, saved: tuple[Any, int] | None) -> None:
    """The KV cache as `llamacpp_kv.save_state` copied it (empty when there was no copy),
    its tokens (``input_ids``, untouched meanwhile) counted again."""
    import llama_cpp

    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    if saved is not None:
        buf, n = saved
        if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(buf), 0) == len(buf):
            llm.n_tokens = n
            return
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        log.warning("the KV cache could not be put back after scoring a prompt")
    llm.reset()
