"""The vLLM embedder (``--task embedding`` on a GPU pool) against the real ``vllm`` 0.29.0
package; only the engine core, which needs a GPU, is a ``create_autospec`` fake of vLLM's
own ``AsyncLLM``. ``AsyncEngineArgs``, ``PoolingParams`` and the pooling output classes are
the real ones. Runs in the GPU requirement venv, started by tests/serving/test_vllm_engine.py.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import httpx
import pytest
import torch
import vllm
from vllm.config import ModelConfig
from vllm.outputs import PoolingOutput, PoolingRequestOutput
from vllm.tokenizers.protocol import TokenizerLike
from vllm.v1.engine.async_llm import AsyncLLM

from wattserve_serving.config import ServeConfig
from wattserve_serving.engines import make_engine
from wattserve_serving.engines.vllm_embed import VLLMEmbedder

from serving_helpers import LoopbackServer

SIZE = 8  # the fake model's embedding size


class Fakes:
    def __init__(self) -> None:
        self.args: list[Any] = []
        self.params: list[Any] = []
        self.prompts: list[Any] = []

    def from_engine_args(self, engine_args: Any, *_: Any, **__: Any) -> Any:
        assert isinstance(engine_args, vllm.AsyncEngineArgs)
        self.args.append(engine_args)
        engine = mock.create_autospec(AsyncLLM, instance=True)
        config = mock.create_autospec(ModelConfig, instance=True)
        config.max_model_len = 512
        config.embedding_size = SIZE
        engine.model_config = config
        tokenizer = mock.create_autospec(TokenizerLike, instance=True)
        tokenizer.encode.side_effect = (
            lambda text, add_special_tokens=True: ([1] if add_special_tokens else [])
            + [ord(c) % 1000 for c in text])
        tokenizer.__len__.return_value = 1000
        engine.get_tokenizer.return_value = tokenizer
        engine.encode.side_effect = self._encode
        return engine

    async def _encode(self, prompt: Any, pooling_params: Any, request_id: str,
                      **_: Any) -> AsyncIterator[PoolingRequestOutput[PoolingOutput]]:
        assert isinstance(pooling_params, vllm.PoolingParams)
        self.params.append(pooling_params)
        self.prompts.append(prompt)
        ids = prompt["prompt_token_ids"]
        # A deterministic, unnormalised vector of the ids: [len, sum, 1, 0, ...].
        data = torch.tensor([float(len(ids)), float(sum(ids)), 1.0] + [0.0] * (SIZE - 3))
        yield PoolingRequestOutput(request_id=request_id, outputs=PoolingOutput(data=data),
                                   prompt_token_ids=ids, num_cached_tokens=0, finished=True)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    made = Fakes()
    monkeypatch.setattr(vllm.AsyncLLMEngine, "from_engine_args", made.from_engine_args)
    return made


def test_what_the_embedder_calls_exists_on_the_real_classes() -> None:
    assert inspect.isasyncgenfunction(AsyncLLM.encode)
    params = inspect.signature(AsyncLLM.encode).parameters
    assert list(params)[1:4] == ["prompt", "pooling_params", "request_id"]
    assert isinstance(inspect.getattr_static(ModelConfig, "embedding_size"), property)
    assert "pooling" in str(inspect.signature(vllm.AsyncEngineArgs).parameters["runner"])
    vllm.PoolingParams(task="embed")  # the task name the embedder sends is a real one


def test_loads_the_pooling_runner_and_embeds_each_input(fakes: Fakes) -> None:
    async def scenario() -> None:
        engine = make_engine(ServeConfig(model="BAAI/bge-m3", engine="vllm",
                                         task="embedding", gpu_count=2, context_length=512))
        assert isinstance(engine, VLLMEmbedder)
        await engine.load()
        args = fakes.args[0]
        assert (args.runner, args.tensor_parallel_size, args.max_model_len) == (
            "pooling", 2, 512)
        assert (engine.dimensions, engine.context_length, engine.vocab_size()) == (SIZE, 512,
                                                                                   1000)
        ids = [await engine.tokenize("ab"), [5, 6, 7]]
        vectors = await engine.embed(ids)
        assert [p["prompt_token_ids"] for p in fakes.prompts] == ids
        assert all(p.task == "embed" for p in fakes.params)
        for v, i in zip(vectors, ids, strict=True):
            norm = math.sqrt(len(i) ** 2 + sum(i) ** 2 + 1)
            assert v[:3] == pytest.approx([len(i) / norm, sum(i) / norm, 1 / norm])
            assert len(v) == SIZE
        await engine.close()
        assert not engine.ready()

    asyncio.run(scenario())


def test_vllm_embeddings_behind_the_api(fakes: Fakes) -> None:
    cfg = ServeConfig(model="BAAI/bge-m3", model_name="bge", engine="vllm", task="embedding",
                      context_length=512)
    server = LoopbackServer(cfg).start()
    try:
        got = httpx.post(server.url + "/v1/embeddings", timeout=30,
                         json={"model": "bge", "input": ["ab", "c"]}).json()
        assert [d["index"] for d in got["data"]] == [0, 1]
        assert got["usage"]["prompt_tokens"] == 3 + 2
        refused = httpx.post(server.url + "/v1/chat/completions", timeout=30, json={
            "model": "bge", "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 400
        too_big = httpx.post(server.url + "/v1/embeddings", timeout=30,
                             json={"model": "bge", "input": [999, 1000]})
        assert too_big.status_code == 400 and too_big.json()["error"]["param"] == "input"
    finally:
        server.stop()
