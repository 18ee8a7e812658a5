"""Log probabilities of tokens from an engine's logits rows (pure numpy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    return token_logprobs(logits.reshape(1, -1), [token], top, piece)[0]


def token_logprobs(
    rows: npt.NDArray[np.float32], tokens: Sequence[int], top: int,
    piece: Callable[[int], bytes]
) -> list[TokenLogprob]:
    """``tokens[i]``'s log-softmax in ``rows[i]``, with row i's ``top`` most likely tokens
    (ties by id): `token_logprob` for a block of rows at once (numpy temporaries of about
    four times the block's float32 size)."""
    x = rows.astype(np.float64)
    peak = x.max(axis=1)
    norm = peak + np.log(np.exp(x - peak[:, None]).sum(axis=1))
    k = min(top, x.shape[1])
    out = []
    for i, token in enumerate(tokens):
        alternatives: tuple[tuple[str, bytes, float], ...] = ()
        if k > 0:
            ids = np.argpartition(-x[i], k - 1)[:k]
            ids = ids[np.lexsort((ids, -x[i, ids]))]
            alternatives = tuple(_entry(int(t), float(x[i, t] - norm[i]), piece) for t in ids)
        text, raw, logprob = _entry(token, float(x[i, token] - norm[i]), piece)
        out.append(TokenLogprob(text, raw, logprob, alternatives))
    return out


def _entry(token: int, logprob: float, piece: Callable[[int], bytes]) -> tuple[str, bytes, float]:
    raw = piece(token)
    return raw.decode("utf-8", errors="replace"), raw, logprob
