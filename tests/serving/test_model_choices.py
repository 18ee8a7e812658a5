"""``n`` choices with the real SmolLM2 model and the official `openai` client: n answers
indexed 0..n-1, the prompt counted once and every choice's tokens in ``usage``, a seeded
set reproducible (its first choice is the single answer of the same seed), streamed choices
equal to the same request unstreamed, on both endpoints; /metrics counts the prompt once."""

from __future__ import annotations

from collections import defaultdict

import openai
import pytest

from serving_helpers import LoopbackServer

pytestmark = pytest.mark.model

ASK = [{"role": "user", "content": "Say something about the sea."}]
NO_EOS = {"ignore_eos": True}  # every choice runs to max_tokens: exact usage
# llama.cpp's numbers depend on how a prompt was batched: the first request with a prompt
# evaluates it whole, a repeat re-uses the cached prefix (docs/serving.md, seeds). Answers
# compared across requests are therefore all repeats: a warm-up request goes first.


def _chat(client: openai.OpenAI, **kw: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(  # type: ignore[call-overload, no-any-return]
        model="smollm2", messages=ASK, **kw)


def test_n_choices_are_indexed_and_counted_once_for_the_prompt(
        client: openai.OpenAI) -> None:
    _chat(client, max_tokens=1)  # warm-up: what follows re-uses the cached prompt
    one = _chat(client, max_tokens=6, seed=11, extra_body=NO_EOS)
    three = _chat(client, n=3, max_tokens=6, seed=11, extra_body=NO_EOS)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" and c.message.content for c in three.choices)
    assert three.usage is not None and one.usage is not None
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    assert three.usage.completion_tokens == 3 * 6
    # Seeded: the set is reproducible, its first choice is the single answer of that seed,
    # and the other choices are samples of their own, not copies.
    assert three.choices[0].message.content == one.choices[0].message.content
    again = _chat(client, n=3, max_tokens=6, seed=11, extra_body=NO_EOS)
    assert [c.message.content for c in again.choices] == \
        [c.message.content for c in three.choices]
    assert len({c.message.content for c in three.choices}) > 1


def test_streamed_choices_equal_the_unstreamed_answer(client: openai.OpenAI) -> None:
    _chat(client, max_tokens=1)  # warm-up
    whole = _chat(client, n=2, max_tokens=8, seed=5)
    texts: dict[int, str] = defaultdict(str)
    finishes: dict[int, str | None] = {}
    roles: list[int] = []
    usage = None
    for chunk in _chat(client, n=2, max_tokens=8, seed=5, stream=True,
                       stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role == "assistant":
                roles.append(choice.index)
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason is not None:
                finishes[choice.index] = choice.finish_reason
    assert roles == [0, 1]
    assert [texts[0], texts[1]] == [c.message.content for c in whole.choices]
    assert [finishes[0], finishes[1]] == [c.finish_reason for c in whole.choices]
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_completions_endpoint_answers_n_choices_with_echo(client: openai.OpenAI) -> None:
    client.completions.create(model="smollm2", prompt="The sea is", max_tokens=1)  # warm-up
    resp = client.completions.create(model="smollm2", prompt="The sea is", n=2, max_tokens=4,
                                     seed=3, echo=True, extra_body=NO_EOS)
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.text.startswith("The sea is") for c in resp.choices)
    assert resp.usage is not None and resp.usage.completion_tokens == 8
    streamed: dict[int, str] = defaultdict(str)
    for chunk in client.completions.create(model="smollm2", prompt="The sea is", n=2,
                                           max_tokens=4, seed=3, echo=True, stream=True,
                                           extra_body=NO_EOS):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert [streamed[0], streamed[1]] == [c.text for c in resp.choices]


def test_metrics_count_the_prompt_once_and_every_choice(model_server: LoopbackServer,
                                                        client: openai.OpenAI) -> None:
    keys = ("wattserve_prompt_tokens_total", "wattserve_generation_tokens_total",
            "wattserve_time_to_first_token_seconds_count",
            "wattserve_inter_token_latency_seconds_count")
    before = model_server.metrics()
    resp = _chat(client, n=4, max_tokens=3, seed=1, extra_body=NO_EOS)
    after = model_server.metrics()
    prompt, generated, ttft, itl = (after[k] - before[k] for k in keys)
    assert resp.usage is not None
    assert prompt == resp.usage.prompt_tokens
    assert generated == 4 * 3
    assert ttft == 1  # one time to first token per request, not per choice
    assert itl == 4 * (3 - 1)  # the gaps within each choice


def test_too_many_choices_is_a_400_naming_n(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _chat(client, n=17, max_tokens=2)
    assert err.value.body is not None
    assert err.value.body.get("param") == "n"  # type: ignore[union-attr]


def test_several_prompts_answer_n_choices_each_in_prompt_order(
        model_server: LoopbackServer, client: openai.OpenAI) -> None:
    prompts = ["The sea is", "Mountains are"]
    singles = [client.completions.create(model="smollm2", prompt=p, max_tokens=1)
               for p in prompts]
    before = model_server.metrics()
    batch = client.completions.create(model="smollm2", prompt=prompts, n=2, max_tokens=4,
                                      seed=3, extra_body=NO_EOS)
    after = model_server.metrics()
    assert [c.index for c in batch.choices] == [0, 1, 2, 3]  # prompt p, choice i: p * n + i
    assert batch.usage is not None
    prompt_tokens = sum(s.usage.prompt_tokens for s in singles if s.usage)
    assert batch.usage.prompt_tokens == prompt_tokens
    assert batch.usage.completion_tokens == 4 * 4
    assert after["wattserve_prompt_tokens_total"] - before["wattserve_prompt_tokens_total"] \
        == prompt_tokens
    # Streamed after the same requests' cache states (prompt 0 after prompt 1, ...): equal.
    streamed: dict[int, str] = defaultdict(str)
    for chunk in client.completions.create(model="smollm2", prompt=prompts, n=2, max_tokens=4,
                                           seed=3, stream=True, extra_body=NO_EOS):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert [streamed[i] for i in range(4)] == [c.text for c in batch.choices]
    # The seeded choices of one prompt differ (seed + i), as for a single prompt.
    assert batch.choices[0].text != batch.choices[1].text


def test_several_token_id_prompts(client: openai.OpenAI) -> None:
    ids = [[1, 504, 3391, 314], [1, 22, 3391]]
    resp = client.completions.create(model="smollm2", prompt=ids, max_tokens=2, seed=1)
    assert [c.index for c in resp.choices] == [0, 1]
    assert resp.usage is not None and resp.usage.prompt_tokens == 7
