"""Log probabilities with the real SmolLM2 model and the official `openai` client: chat's
``logprobs``/``top_logprobs`` and the completions endpoint's legacy ``logprobs``, checked
against llama.cpp's own logits for the same tokens (a second, independent `Llama` with
``logits_all``), streamed equal to unstreamed, and the 400s for what is not served. The
prompt's own (``echo``): test_model_echo_logprobs.py."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import openai
import pytest

from serving_helpers import log_softmax

pytestmark = pytest.mark.model

ASK = [{"role": "user", "content": "Name three colours of the sea."}]


def test_completion_logprobs_are_llama_cpps_own(client: openai.OpenAI, reference: Any) -> None:
    prompt = reference.tokenize(b"Tide pools along the rocky coast hold", add_bos=True)
    resp = client.completions.create(model="smollm2", prompt=prompt, max_tokens=8,
                                     temperature=0, logprobs=5, extra_body={"ignore_eos": True})
    lp = resp.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert lp.text_offset is not None
    assert len(lp.tokens) == 8 and "".join(lp.tokens) == resp.choices[0].text
    reference.reset()
    reference.eval(prompt)
    for i, (token, logprob, top) in enumerate(zip(lp.tokens, lp.token_logprobs,
                                                  lp.top_logprobs, strict=True)):
        ref = log_softmax(np.asarray(reference.scores[reference.n_tokens - 1]))
        greedy = int(ref.argmax())
        piece = reference.detokenize([greedy]).decode("utf-8", errors="replace")
        assert token == piece, i  # temperature 0: the most likely token
        assert logprob == pytest.approx(ref[greedy], abs=2e-3)
        best = np.argsort(-ref)[:5]
        assert len(top) == 5
        assert sorted(top.values(), reverse=True) == pytest.approx(
            [ref[t] for t in best], abs=2e-3)
        assert lp.text_offset[i] == sum(len(t) for t in lp.tokens[:i])
        reference.eval([greedy])
    # OpenAI's "up to logprobs+1 elements": each dict holds the chosen token too, so with
    # logprobs 0 it holds that token alone.
    zero = client.completions.create(model="smollm2", prompt=prompt, max_tokens=4,
                                     temperature=0.8, seed=2, logprobs=0)
    lp0 = zero.choices[0].logprobs
    assert lp0 is not None and lp0.tokens and lp0.token_logprobs and lp0.top_logprobs
    assert lp0.top_logprobs == [{t: v} for t, v in zip(lp0.tokens, lp0.token_logprobs,
                                                         strict=True)]


def test_chat_logprobs_and_their_alternatives(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="smollm2", messages=ASK, max_tokens=10, temperature=0,  # type: ignore[arg-type]
        logprobs=True, top_logprobs=4)
    choice = resp.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    content = choice.logprobs.content
    assert b"".join(bytes(e.bytes or []) for e in content).decode() == choice.message.content
    for e in content:
        assert e.logprob <= 0.0 and len(e.top_logprobs) == 4
        assert e.top_logprobs[0].token == e.token  # greedy: the best is the one chosen
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob)
        values = [a.logprob for a in e.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-9
    # Sampled, the chosen token's log probability is still the model's (not the sampler's).
    sampled = client.chat.completions.create(
        model="smollm2", messages=ASK, max_tokens=10, temperature=1.5,  # type: ignore[arg-type]
        seed=4, logprobs=True, top_logprobs=20)
    assert sampled.choices[0].logprobs is not None
    for e in sampled.choices[0].logprobs.content or []:
        alternatives = {a.token: a.logprob for a in e.top_logprobs}
        if e.token in alternatives:
            assert alternatives[e.token] == pytest.approx(e.logprob)
        else:
            assert e.logprob <= e.top_logprobs[-1].logprob + 1e-9


def test_streamed_logprobs_equal_unstreamed_even_when_a_stop_string_holds_text(
        client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="smollm2", messages=ASK, max_tokens=16, temperature=0,  # type: ignore[arg-type]
        logprobs=True)
    words = (first.choices[0].message.content or "").split()
    assert len(words) > 3
    stop = words[len(words) // 2]
    whole = client.chat.completions.create(
        model="smollm2", messages=ASK, max_tokens=16, temperature=0,  # type: ignore[arg-type]
        logprobs=True, top_logprobs=2, stop=[stop])
    streamed: list[Any] = []
    for chunk in client.chat.completions.create(
            model="smollm2", messages=ASK, max_tokens=16, temperature=0,  # type: ignore[arg-type]
            logprobs=True, top_logprobs=2, stop=[stop], stream=True):
        for c in chunk.choices:
            if c.logprobs is not None:
                streamed.extend(c.logprobs.content or [])
    assert whole.choices[0].logprobs is not None
    assert [(e.token, e.logprob) for e in streamed] == \
        [(e.token, e.logprob) for e in whole.choices[0].logprobs.content or []]


def test_logprobs_requests_the_server_cannot_serve_are_400(client: openai.OpenAI) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),  # OpenAI: needs logprobs true
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="smollm2", messages=ASK,  # type: ignore
                                           max_tokens=2, **kwargs)
        assert err.value.body["param"] == param  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="smollm2", prompt="The sea", max_tokens=2, logprobs=6)
    assert err.value.body["param"] == "logprobs"  # type: ignore[index]
