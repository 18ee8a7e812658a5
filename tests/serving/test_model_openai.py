"""The official `openai` client against the app with the real SmolLM2 model (uvicorn)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from serving_helpers import LoopbackServer

pytestmark = pytest.mark.model

# Usage reported by every successful request in this module, compared with /metrics last.
USAGES: list[tuple[int, int]] = []
REQUESTS = {"n": 0}


@pytest.fixture(scope="module")
def reference_tokenizer(model_server: LoopbackServer) -> Any:
    """llama.cpp's own tokenizer + the GGUF chat template, independent of the app's engine."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    vocab = Llama(model_path=model_server.config.model, vocab_only=True, verbose=False)
    fmt = Jinja2ChatFormatter(
        template=vocab.metadata["tokenizer.chat_template"],
        eos_token=vocab._model.token_get_text(vocab.token_eos()),
        bos_token=vocab._model.token_get_text(vocab.token_bos()),
    )

    class Ref:
        def chat(self, messages: list[dict[str, str]]) -> int:
            text = fmt(messages=messages).prompt
            return len(vocab.tokenize(text.encode(), add_bos=False, special=True))

        def text(self, prompt: str) -> int:
            return len(vocab.tokenize(prompt.encode(), add_bos=True, special=True))

    return Ref()


def _record(usage: Any) -> None:
    REQUESTS["n"] += 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    USAGES.append((usage.prompt_tokens, usage.completion_tokens))


def test_models_list(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["smollm2"]


def test_models_retrieve(client: openai.OpenAI) -> None:
    model = client.models.retrieve("smollm2")
    assert (model.id, model.object, model.owned_by) == ("smollm2", "model", "wattserve")
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("org/other-model")
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_chat_non_streaming(client: openai.OpenAI, reference_tokenizer: Any) -> None:
    messages = [{"role": "user", "content": "What is the capital of France? One word."}]
    resp = client.chat.completions.create(model="smollm2", messages=messages,  # type: ignore[arg-type]
                                          max_tokens=24, temperature=0)
    _record(resp.usage)
    text = resp.choices[0].message.content or ""
    assert "paris" in text.lower(), text
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == reference_tokenizer.chat(messages)
    assert 1 <= resp.usage.completion_tokens <= 24


def test_chat_streaming(client: openai.OpenAI, reference_tokenizer: Any) -> None:
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Name three colours."}]
    stream = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=40, temperature=0,  # type: ignore[arg-type]
        stream=True, stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    finish = None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    _record(usage)
    text = "".join(pieces)
    assert len(text.split()) >= 3, text
    assert finish in ("stop", "length")
    assert usage is not None
    assert usage.prompt_tokens == reference_tokenizer.chat(messages)
    if finish == "length":
        assert usage.completion_tokens == 40


def test_completion(client: openai.OpenAI, reference_tokenizer: Any) -> None:
    prompt = "The capital of France is"
    resp = client.completions.create(model="smollm2", prompt=prompt, max_tokens=8, temperature=0)
    _record(resp.usage)
    assert resp.choices[0].text.strip(), resp
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == reference_tokenizer.text(prompt)
    assert resp.usage.completion_tokens <= 8


def test_completion_streaming_with_stop(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="smollm2", prompt="1, 2, 3, 4,", max_tokens=30,
                                       temperature=0, stop=["8"], stream=True,
                                       stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].text
        if chunk.usage is not None:
            usage = chunk.usage
    _record(usage)
    assert "8" not in text and "5" in text, text


def test_bad_inputs_via_client(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    REQUESTS["n"] += 1
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="smollm2", max_tokens=100_000,
                                       messages=[{"role": "user", "content": "x"}])
    REQUESTS["n"] += 1
    assert info.value.body["param"] == "max_tokens"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="smollm2", prompt="word " * 600, max_tokens=1)
    REQUESTS["n"] += 1
    assert info.value.body["code"] == "context_length_exceeded"  # type: ignore[index]


def test_metrics_match_usage(model_server: LoopbackServer) -> None:
    m = model_server.metrics()
    assert m["wattserve_prompt_tokens_total"] == sum(p for p, _ in USAGES)
    assert m["wattserve_generation_tokens_total"] == sum(c for _, c in USAGES)
    # latency only of served requests; the refused ones are counted as errors
    assert m["wattserve_request_duration_seconds_count"] == len(USAGES)
    assert m["wattserve_requests_total"] == REQUESTS["n"]
    assert m["wattserve_request_errors_total"] == REQUESTS["n"] - len(USAGES)
    assert m["wattserve_time_to_first_token_seconds_count"] == len(USAGES)
    assert m["wattserve_inter_token_latency_seconds_count"] == sum(
        max(0, c - 1) for _, c in USAGES)
    labels = ("engine=llamacpp,model=smollm2,model_deployment=smollm2,namespace=test,"
              "pool=cpu-test")
    assert m[f"wattserve_requests_total{{{labels},status=200}}"] == len(USAGES)
    assert m["wattserve_requests_in_flight"] == 0 and m["wattserve_requests_queued"] == 0


def test_energy_grows_at_a_plausible_rate(model_server: LoopbackServer) -> None:
    from wattserve_serving.config import pod_cpus
    from wattserve_serving.energy import PowerModel

    model = PowerModel.from_env(pod_cpus())
    key = "wattserve_energy_joules_total"
    first, t0 = model_server.metrics()[key], time.monotonic()
    seen = [first]
    body = {"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 32}
    httpx.post(model_server.url + "/v1/completions", json=body, timeout=120)
    for _ in range(4):
        time.sleep(0.5)
        seen.append(model_server.metrics()[key])
    elapsed = time.monotonic() - t0
    assert seen == sorted(seen) and seen[-1] > first
    watts = (seen[-1] - first) / elapsed
    idle_share = model.idle_watts * min(1.0, model.pod_cpus / model.node_cpus)
    assert idle_share * 0.8 <= watts <= model.max_watts * 1.05, (watts, model)
    metric_keys = [k for k in model_server.metrics() if k.startswith(key + "{")]
    assert metric_keys and all("source=model" in k for k in metric_keys)
