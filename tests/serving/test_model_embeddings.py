"""`/v1/embeddings` on the real SmolLM2 (llama.cpp in embedding mode, `--task embedding`),
through the official `openai` client.

SmolLM2 is a chat model, not an embedding model: its GGUF names no pooling, so the server
mean-pools it. That runs the real engine path end to end; the vectors are checked against
an independent llama.cpp instance, not for retrieval quality.
"""

from __future__ import annotations

import base64
import math
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import openai_client
from wattserve_serving.config import ServeConfig
from wattserve_serving.embeddings import MAX_INPUTS

from serving_helpers import LoopbackServer, smollm2_path

CONTEXT = 256
TEXTS = ["The cat sat on the mat.", "A kitten is sitting on a rug.",
         "Quarterly revenue grew by 12 percent."]


@pytest.fixture(scope="module")
def embed_server() -> Iterator[LoopbackServer]:
    cfg = ServeConfig(model=str(smollm2_path()), model_name="smol-embed", engine="llamacpp",
                      task="embedding", threads=max(1, min(2, os.cpu_count() or 1)),
                      max_queue=4, context_length=CONTEXT, pool="cpu-test",
                      namespace="test", model_deployment="smol-embed")
    server = LoopbackServer(cfg).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embed_client(embed_server: LoopbackServer) -> Any:
    return openai_client(embed_server)


@pytest.fixture(scope="module")
def reference(model_path: Path) -> Any:
    """A second llama.cpp instance, mean-pooled and normalised by llama-cpp-python itself."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model_path), embedding=True, n_ctx=CONTEXT,
                          n_batch=CONTEXT, n_ubatch=CONTEXT, n_threads=1,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
    yield llm
    llm.close()


def _dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_equal_an_independent_llama_cpp_mean_pooling(embed_client: Any,
                                                             reference: Any) -> None:
    got = embed_client.embeddings.create(model="smol-embed", input=TEXTS)  # base64 on the wire
    expected = reference.embed(TEXTS, normalize=True)
    assert [d.index for d in got.data] == [0, 1, 2]
    for item, want in zip(got.data, expected, strict=True):
        assert len(item.embedding) == len(want) == 576  # SmolLM2-135M's hidden size
        assert math.isclose(_dot(item.embedding, item.embedding), 1.0, abs_tol=1e-5)
        assert max(abs(a - b) for a, b in zip(item.embedding, want, strict=True)) < 1e-4


def test_usage_counts_each_inputs_tokens(embed_client: Any, reference: Any) -> None:
    got = embed_client.embeddings.create(model="smol-embed", input=TEXTS,
                                         encoding_format="float")
    tokens = sum(len(reference.tokenize(t.encode(), add_bos=True, special=False))
                 for t in TEXTS)
    assert got.usage.prompt_tokens == got.usage.total_tokens == tokens
    assert got.model == "smol-embed" and got.object == "list"


def test_related_texts_are_closer_than_unrelated(embed_client: Any) -> None:
    v = [d.embedding for d in embed_client.embeddings.create(model="smol-embed",
                                                             input=TEXTS).data]
    assert _dot(v[0], v[1]) > _dot(v[0], v[2]) + 0.1


def test_token_ids_one_text_and_base64_agree(embed_client: Any, reference: Any,
                                             embed_server: LoopbackServer) -> None:
    ids = reference.tokenize(TEXTS[0].encode(), add_bos=True, special=False)
    by_text = embed_client.embeddings.create(model="smol-embed", input=TEXTS[0],
                                             encoding_format="float").data[0].embedding
    by_ids = embed_client.embeddings.create(model="smol-embed", input=ids,
                                            encoding_format="float").data[0].embedding
    raw = httpx.post(embed_server.url + "/v1/embeddings", timeout=60, json={
        "model": "smol-embed", "input": [ids], "encoding_format": "base64"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    decoded = list(struct.unpack(f"<{len(packed) // 4}f", packed))
    assert max(abs(a - b) for a, b in zip(by_text, by_ids, strict=True)) < 1e-6
    assert max(abs(a - b) for a, b in zip(by_text, decoded, strict=True)) < 1e-6


@pytest.mark.parametrize(("body", "param"), [
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": [[]]}, "input"),
    ({"input": ["ok", ""]}, "input.1"),
    ({"input": [49152]}, "input"),
    ({"input": "word " * (CONTEXT + 10)}, "input"),
    ({"input": ["x"] * (MAX_INPUTS + 1)}, "input"),
    ({"input": 5}, "input"),
    ({"input": "x", "dimensions": 64}, "dimensions"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "other", "input": "x"}, "model"),
])
def test_bad_input_is_a_400_naming_the_field(embed_server: LoopbackServer,
                                             body: dict[str, Any], param: str) -> None:
    response = httpx.post(embed_server.url + "/v1/embeddings", timeout=60,
                          json={"model": "smol-embed", **body})
    assert response.status_code == (404 if param == "model" else 400), response.text
    assert response.json()["error"]["param"] == param
    assert httpx.get(embed_server.url + "/health", timeout=10).status_code == 200


def test_a_number_of_more_than_4300_digits_is_400_not_500(embed_server: LoopbackServer
                                                          ) -> None:
    response = httpx.post(embed_server.url + "/v1/embeddings", timeout=60,
                          headers={"Content-Type": "application/json"},
                          content=b'{"model":"smol-embed","input":[' + b"9" * 5000 + b"]}")
    assert response.status_code == 400, response.text  # before: 500
    assert response.json()["error"]["code"] == "invalid_json"
    assert httpx.get(embed_server.url + "/health", timeout=10).status_code == 200


def test_an_embedding_model_refuses_to_generate(embed_server: LoopbackServer) -> None:
    for path, body in (("/v1/chat/completions", {"messages": [{"role": "user",
                                                                "content": "hi"}]}),
                       ("/v1/completions", {"prompt": "hi"})):
        response = httpx.post(embed_server.url + path, timeout=60,
                              json={"model": "smol-embed", **body})
        assert response.status_code == 400
        assert "/v1/embeddings" in response.json()["error"]["message"]


def test_a_chat_model_refuses_embeddings(model_server: LoopbackServer) -> None:
    response = httpx.post(model_server.url + "/v1/embeddings", timeout=60,
                          json={"model": "smollm2", "input": "hi"})
    assert response.status_code == 400
    assert "task: embedding" in response.json()["error"]["message"]


def test_metrics_count_requests_and_prompt_tokens(embed_client: Any,
                                                  embed_server: LoopbackServer) -> None:
    before = embed_server.metrics()
    got = embed_client.embeddings.create(model="smol-embed", input=TEXTS[:2])
    after = embed_server.metrics()
    tokens = "wattserve_prompt_tokens_total"
    assert after[tokens] - before.get(tokens, 0.0) == got.usage.prompt_tokens
    ok = [k for k in after if k.startswith("wattserve_requests_total{") and "status=200" in k]
    assert ok and sum(after[k] - before.get(k, 0.0) for k in ok) == 1
