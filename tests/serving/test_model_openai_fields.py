"""Fields OpenAI accepts, with the real SmolLM2 model and the official `openai` client: a
long ``stop`` string, an explicit ``null`` where OpenAI marks a field nullable (the same as
leaving it out), every ``seed`` reproducible, even those llama.cpp reads as "random", and a
prompt that fills the context echoed with ``max_tokens: 0``."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from serving_helpers import LoopbackServer

pytestmark = pytest.mark.model

ASK = [{"role": "user", "content": "Write a short poem about the sea."}]
PROMPT = "Once upon a time"
NO_EOS = {"ignore_eos": True}


def test_a_stop_string_longer_than_16_characters_is_accepted(client: openai.OpenAI) -> None:
    stop = "###END_OF_ANSWER#"  # 17 characters: before, "at most 16 items"
    chat = client.chat.completions.create(model="smollm2", messages=ASK,  # type: ignore[arg-type]
                                          max_tokens=4, stop=stop)
    assert chat.choices[0].finish_reason in ("stop", "length")
    text = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=4, stop=stop)
    assert text.choices[0].finish_reason in ("stop", "length")
    listed = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=4,
                                       stop=[stop, "x" * 1000])
    assert listed.choices[0].finish_reason in ("stop", "length")


def test_a_long_stop_string_still_stops(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=24,
                                      temperature=0, extra_body=NO_EOS).choices[0].text
    stop = whole[3:23]  # 20 characters the answer writes
    cut = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=24,
                                    temperature=0, stop=stop, extra_body=NO_EOS).choices[0]
    assert cut.finish_reason == "stop" and cut.text == whole[:3], (whole, cut.text)


@pytest.mark.parametrize("bad", [["s"] * 17, "x" * 1001, ["ok", "x" * 1001]])
def test_too_many_or_too_long_stop_strings_are_400_naming_stop(client: openai.OpenAI,
                                                               bad: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=2, stop=bad)
    assert info.value.body["param"] == "stop"  # type: ignore[index]


CHAT_NULLABLE = ["n", "stream", "presence_penalty", "frequency_penalty", "parallel_tool_calls"]
COMPLETION_NULLABLE = ["n", "stream", "echo", "presence_penalty", "frequency_penalty",
                       "max_tokens"]


def _same_answer(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["object"] == b["object"]
    assert [{k: v for k, v in c.items()} for c in a["choices"]] == b["choices"]
    assert a["usage"] == b["usage"]


@pytest.mark.parametrize("field", CHAT_NULLABLE)
def test_chat_null_is_the_same_as_leaving_the_field_out(model_server: LoopbackServer,
                                                       field: str) -> None:
    body: dict[str, Any] = {"model": "smollm2", "messages": ASK, "max_tokens": 8,
                            "temperature": 1.0, "seed": 7}
    with httpx.Client(base_url=model_server.url, timeout=120) as http:
        http.post("/v1/chat/completions", json=body)  # warm-up: the prompt is cached after
        omitted = http.post("/v1/chat/completions", json=body)
        null = http.post("/v1/chat/completions", json={**body, field: None})
    assert null.status_code == 200, null.text  # before: 400 "Input should be a valid ..."
    _same_answer(null.json(), omitted.json())


@pytest.mark.parametrize("field", COMPLETION_NULLABLE)
def test_completions_null_is_the_same_as_leaving_the_field_out(
        model_server: LoopbackServer, field: str) -> None:
    body: dict[str, Any] = {"model": "smollm2", "prompt": PROMPT, "temperature": 1.0,
                            "seed": 7, "ignore_eos": True}
    if field != "max_tokens":
        body["max_tokens"] = 8
    with httpx.Client(base_url=model_server.url, timeout=120) as http:
        http.post("/v1/completions", json=body)  # warm-up
        omitted = http.post("/v1/completions", json=body)
        null = http.post("/v1/completions", json={**body, field: None})
    assert null.status_code == 200, null.text
    _same_answer(null.json(), omitted.json())
    if field == "max_tokens":  # OpenAI's legacy default; before: the rest of the context
        assert null.json()["usage"]["completion_tokens"] == 16


@pytest.mark.parametrize("seed", [4294967295, -1, 2**64 - 1, 8589934591])
def test_every_seed_is_reproducible_at_temperature_1(client: openai.OpenAI, seed: int) -> None:
    # 0xFFFFFFFF is llama.cpp's "random seed": before, these four drew a new one each time.
    def answer() -> list[str | None]:
        resp = client.chat.completions.create(
            model="smollm2", messages=ASK, max_tokens=16, temperature=1.0,  # type: ignore[arg-type]
            seed=seed, extra_body=NO_EOS)
        return [c.message.content for c in resp.choices]

    answer()  # warm-up: a repeat re-uses the cached prompt (docs/serving.md, seeds)
    assert answer() == answer() == answer()


def test_each_choice_is_reproducible_when_its_seed_is_llamas_random_seed(
        client: openai.OpenAI) -> None:
    # choice 1 samples with seed + 1 = 0xFFFFFFFF
    def answers() -> list[str]:
        resp = client.completions.create(model="smollm2", prompt=PROMPT, max_tokens=16, n=2,
                                         temperature=1.0, seed=4294967294, extra_body=NO_EOS)
        return [c.text for c in resp.choices]

    answers()  # warm-up
    first = answers()
    assert answers() == first == answers()
    assert first[0] != first[1]


def test_a_prompt_filling_the_context_is_echoed_with_max_tokens_0(
        client: openai.OpenAI, model_server: LoopbackServer) -> None:
    ctx = model_server.api.engine.context_length
    ids = [28] * ctx  # a token id prompt exactly as long as the context
    echoed = client.completions.create(model="smollm2", prompt=ids, max_tokens=0, echo=True,
                                       logprobs=1)
    choice = echoed.choices[0]
    assert echoed.usage is not None and echoed.usage.prompt_tokens == ctx
    assert echoed.usage.completion_tokens == 0 and choice.text
    assert choice.logprobs is not None and len(choice.logprobs.tokens or []) == ctx
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="smollm2", prompt=ids, max_tokens=1)
    said = info.value.body["message"]  # type: ignore[index]
    assert f"has {ctx} tokens" in said and "leaves 0 for generation" in said, said
