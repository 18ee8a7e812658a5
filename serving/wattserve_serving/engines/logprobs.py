"""Log probabilities of generated tokens from an engine's logits row (pure numpy)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from wattserve_serving.engines.base import TokenLogprob

MAX_LOGPROBS = 20  # alternatives per token, OpenAI's top_logprobs bound


def token_logprob(
    logits: npt.NDArray[np.float32], token: int, top: int, piece: Callable[[int], bytes]
) -> TokenLogprob:
    """``token``'s log-softmax in ``logits`` and the ``top`` most likely tokens (ties by id).

    ``piece`` gives a token's bytes; its text is those bytes decoded with replacement (a
    token may hold part of a UTF-8 character: the bytes are exact, the text is not)."""
    row = logits.astype(np.float64, copy=False)
    peak = float(row.max())
    norm = peak + float(np.log(np.exp(row - peak).sum()))
    alternatives: tuple[tuple[str, bytes, float], ...] = ()
    if top > 0:
        k = min(top, row.size)
        best = np.argpartition(-row, k - 1)[:k]
        best = best[np.lexsort((best, -row[best]))]
        alternatives = tuple(_entry(int(i), float(row[i]) - norm, piece) for i in best)
    text, raw, logprob = _entry(token, float(row[token]) - norm, piece)
    return TokenLogprob(text, raw, logprob, alternatives)


def _entry(token: int, logprob: float, piece: Callable[[int], bytes]) -> tuple[str, bytes, float]:
    raw = piece(token)
    return raw.decode("utf-8", errors="replace"), raw, logprob
