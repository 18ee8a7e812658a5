"""OpenAI's ``logit_bias`` with the real SmolLM2 model and the official `openai` client: a
bias of -100 bans a token, +100 makes it the only choice, streamed or not; bad maps are
400s naming ``logit_bias``."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from serving_helpers import LoopbackServer

pytestmark = pytest.mark.model

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def vocab(model_server: LoopbackServer) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=model_server.config.model, vocab_only=True, verbose=False)


def _token(vocab: Any, text: str) -> int:
    (token,) = vocab.tokenize(text.encode(), add_bos=False, special=False)
    return int(token)


def test_a_bias_of_minus_100_bans_the_token_the_model_would_choose(
        client: openai.OpenAI, vocab: Any) -> None:
    plain = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=1,
                                      temperature=0)
    first = _token(vocab, plain.choices[0].text)
    banned = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=6,
                                       temperature=0, logit_bias={str(first): -100})
    ids = vocab.tokenize(banned.choices[0].text.encode(), add_bos=False, special=False)
    assert ids and first not in ids


def test_a_bias_of_100_makes_the_token_the_only_choice(client: openai.OpenAI,
                                                        vocab: Any) -> None:
    yes = _token(vocab, " yes")
    for stream in (False, True):
        kwargs: Any = {"model": "smollm2", "prompt": PROMPT, "max_tokens": 3, "seed": 1,
                       "logit_bias": {str(yes): 100}, "extra_body": {"ignore_eos": True}}
        if stream:
            text = "".join(c.choices[0].text for c in client.completions.create(
                stream=True, **kwargs) if c.choices)
        else:
            text = client.completions.create(**kwargs).choices[0].text
        assert text == " yes" * 3  # sampled at temperature 1, still only that token
    chat = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
        logit_bias={str(yes): 100}, extra_body={"ignore_eos": True})
    assert chat.choices[0].message.content == " yes" * 2


@pytest.mark.parametrize("bias", [{"abc": 1}, {"5": 101}, {"5": -100.5}, {"999999999": 1},
                                  {str(i): 1 for i in range(301)},
                                  {"\u00b2": 10}, {"\u0665": 10}])  # superscript 2, Arabic 5
def test_bad_maps_are_400_naming_logit_bias(client: openai.OpenAI, bias: Any) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=1,
                                  logit_bias=bias)
    assert err.value.body["param"] == "logit_bias"  # type: ignore[index]
