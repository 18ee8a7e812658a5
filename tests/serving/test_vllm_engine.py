"""The vLLM adapter against a mocked `vllm` module (no GPU here)."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from wattserve_serving.config import ServeConfig
from wattserve_serving.engines import make_engine
from wattserve_serving.engines.base import PreparedPrompt, SamplingParams
from wattserve_serving.engines.vllm import VLLMEngine

from serving_helpers import LoopbackServer

WORDS = ["Hello", " there", ",", " friend", "!"]


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class RequestOutput:
    outputs: list[Completion]
    finished: bool


class Tokenizer:
    def apply_chat_template(self, messages: list[dict[str, Any]], tokenize: bool,
                            add_generation_prompt: bool) -> str:
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]


@dataclass
class FakeAsyncLLM:
    args: Any
    aborted: list[str] = field(default_factory=list)
    requests: list[tuple[Any, Any, str]] = field(default_factory=list)
    delay_s: float = 0.0

    async def get_tokenizer(self) -> Tokenizer:
        return Tokenizer()

    async def get_model_config(self) -> Any:
        return types.SimpleNamespace(max_model_len=4096)

    async def generate(self, prompt: Any, sampling: Any, request_id: str
                       ) -> AsyncIterator[RequestOutput]:
        self.requests.append((prompt, sampling, request_id))
        n = min(sampling.kwargs["max_tokens"], len(WORDS))
        for i in range(n):
            await asyncio.sleep(self.delay_s)
            last = i == n - 1
            reason = ("length" if n < len(WORDS) else "stop") if last else None
            yield RequestOutput([Completion("".join(WORDS[: i + 1]), list(range(i + 1)),
                                            reason)], last)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


class Recorder:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    engines: list[FakeAsyncLLM] = []

    class AsyncLLMEngine:
        @staticmethod
        def from_engine_args(args: Recorder) -> FakeAsyncLLM:
            engines.append(FakeAsyncLLM(args))
            return engines[-1]

    module = types.ModuleType("vllm")
    module.AsyncEngineArgs = Recorder  # type: ignore[attr-defined]
    module.SamplingParams = Recorder  # type: ignore[attr-defined]
    module.AsyncLLMEngine = AsyncLLMEngine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    return types.SimpleNamespace(engines=engines)


def test_make_engine_does_not_import_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import would fail
    engine = make_engine(ServeConfig(model="org/m", engine="vllm", gpu_count=2))
    assert isinstance(engine, VLLMEngine)
    assert engine.tensor_parallel_size == 2
    with pytest.raises(Exception, match="wattserve\\[gpu\\]"):
        asyncio.run(engine.load())


def test_load_render_tokenize_generate(fake_vllm: Any) -> None:
    async def scenario() -> None:
        engine = VLLMEngine("org/m", tensor_parallel_size=2, context_length=2048)
        assert not engine.ready()
        await engine.load()
        assert engine.ready() and engine.context_length == 4096
        args = fake_vllm.engines[0].args.kwargs
        assert args == {"model": "org/m", "tensor_parallel_size": 2, "max_model_len": 2048}
        chat = await engine.render_chat([{"role": "user", "content": "hi"}])
        assert chat.text == "<user>hi<assistant>" and chat.add_bos is False
        ids = await engine.tokenize(chat.text, add_bos=chat.add_bos)
        assert len(ids) == len(chat.text)
        params = SamplingParams(max_tokens=3, temperature=0.0, stop=("\n",), seed=7)
        chunks = [c async for c in engine.generate(PreparedPrompt(chat.text, ids), params)]
        assert [c.text for c in chunks] == ["Hello", " there", ","]
        assert sum(c.tokens for c in chunks) == 3
        assert chunks[-1].finish_reason == "length"
        prompt, sampling, _ = fake_vllm.engines[0].requests[0]
        assert prompt == {"prompt_token_ids": ids}
        assert sampling.kwargs["temperature"] == 0.0 and sampling.kwargs["stop"] == ["\n"]
        assert sampling.kwargs["top_k"] == -1 and sampling.kwargs["seed"] == 7
        assert fake_vllm.engines[0].aborted == []

    asyncio.run(scenario())


def test_closing_the_stream_aborts_the_request(fake_vllm: Any) -> None:
    async def scenario() -> None:
        engine = VLLMEngine("org/m")
        await engine.load()
        stream = engine.generate(PreparedPrompt("x", [1, 2]), SamplingParams(max_tokens=5))
        first = await stream.__anext__()
        assert first.text == "Hello"
        await stream.aclose()
        llm = fake_vllm.engines[0]
        assert llm.aborted == [llm.requests[0][2]]

    asyncio.run(scenario())


def test_vllm_engine_behind_the_api(fake_vllm: Any) -> None:
    cfg = ServeConfig(model="org/m", model_name="m", engine="vllm", max_queue=2)
    server = LoopbackServer(cfg).start()
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
        resp = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=10).json()
        assert resp["choices"][0]["message"]["content"] == "Hello there, friend!"
        assert resp["choices"][0]["finish_reason"] == "stop"
        assert resp["usage"]["completion_tokens"] == 5
        assert resp["usage"]["prompt_tokens"] == len("<user>hi<assistant>")
        assert server.metrics()["wattserve_generation_tokens_total"] == 5
    finally:
        server.stop()
