"""The vLLM engine against the real ``vllm`` 0.29.0 package (no GPU: the engine core is the
one part that cannot run here).

Runs in the GPU requirement venv (scripts/setup.d/60-upstream.sh), started by
tests/serving/test_vllm_engine.py. Every fake is built with ``create_autospec`` from vLLM's
own classes (``AsyncLLM``, its ``ModelConfig``, ``TokenizerLike``), and ``AsyncEngineArgs``,
``SamplingParams`` and ``TokensPrompt`` are the real ones, so a renamed method, a changed
signature or a rejected sampling value fails here instead of on a GPU node.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import httpx
import jinja2
import pytest
import vllm
from vllm.config import ModelConfig
from vllm.exceptions import VLLMValidationError
from vllm.logprobs import FlatLogprobs, Logprob
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.tokenizers.protocol import TokenizerLike
from vllm.v1.engine.async_llm import AsyncLLM

from wattserve_serving.config import ServeConfig
from wattserve_serving.engines.base import PreparedPrompt, SamplingParams
from wattserve_serving.engines.vllm import VLLMEngine

from serving_helpers import LoopbackServer

WORDS = ["Hello", " there", ",", " friend", "!"]
MAX_MODEL_LEN = 4096
VOCAB = 4096


def _position(j: int, top: int) -> dict[int, Logprob]:
    """vLLM's logprobs of position ``j`` (sampled token id ``j``): the ``top`` best by rank,
    and the sampled token, ranked first at even positions and 99th at odd ones."""
    ranked = {1000 + r: Logprob(-0.5 * r, rank=r, decoded_token=f"alt{r}")
              for r in range(1, top + 1)}
    if j % 2 == 0:
        ranked.pop(1001, None)
        ranked[j] = Logprob(-0.5, rank=1, decoded_token=WORDS[j])
    else:
        ranked[j] = Logprob(-7.0, rank=99, decoded_token=WORDS[j])
    return ranked


def _prompt_position(token: int, j: int, top: int) -> dict[int, Logprob]:
    """vLLM's prompt logprobs of position ``j`` (prompt token ``token``): the prompt token
    (ranked 50th) and the ``top`` best by rank."""
    ranked = {2000 + r: Logprob(-0.25 * r, rank=r, decoded_token=f"p{r}")
              for r in range(1, top + 1)}
    ranked[token] = Logprob(-3.0 - j, rank=50, decoded_token=chr(token))
    return ranked


def _prompt_logprobs(ids: list[int], top: int | None, upto: int | None = None
                     ) -> FlatLogprobs | None:
    """vLLM's PromptLogprobs container (position 0 None), up to ``upto`` positions (a
    chunked prefill's first part)."""
    if top is None:
        return None
    container = FlatLogprobs()
    container.append(None)
    for j in range(1, len(ids) if upto is None else upto):
        container.append(_prompt_position(ids[j], j, top))
    return container


def _output(request_id: str, text: str, n_tokens: int, finish: str | None,
            finished: bool, top: int | None = None, prompt: list[int] | None = None,
            prompt_logprobs: FlatLogprobs | None = None) -> RequestOutput:
    logprobs = None
    if top is not None:  # cumulative, as the real engine's CUMULATIVE outputs
        logprobs = FlatLogprobs()
        for j in range(n_tokens):
            logprobs.append(_position(j, top))
    completion = CompletionOutput(index=0, text=text, token_ids=list(range(n_tokens)),
                                  cumulative_logprob=None, logprobs=logprobs,
                                  finish_reason=finish)
    return RequestOutput(request_id=request_id, prompt=None, prompt_token_ids=prompt or [1],
                         prompt_logprobs=prompt_logprobs, outputs=[completion],
                         finished=finished)


class Fakes:
    """One AsyncLLM fake per ``from_engine_args`` call, all from the real classes."""

    def __init__(self) -> None:
        self.engines: list[Any] = []
        self.args: list[Any] = []
        self.delay_s = 0.0

    def from_engine_args(self, engine_args: Any, *_: Any, **__: Any) -> Any:
        assert isinstance(engine_args, vllm.AsyncEngineArgs)
        self.args.append(engine_args)
        engine = mock.create_autospec(AsyncLLM, instance=True)
        config = mock.create_autospec(ModelConfig, instance=True)
        config.max_model_len = MAX_MODEL_LEN
        config.max_logprobs = 20  # ModelConfig's default
        engine.model_config = config
        engine.errored = False  # AsyncLLM.errored, a property: the engine core is alive
        tokenizer = mock.create_autospec(TokenizerLike, instance=True)
        tokenizer.__len__.return_value = VOCAB  # ids are characters (encode below)
        tokenizer.apply_chat_template.side_effect = (
            lambda messages, tools=None, **kw: "".join(
                f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>")
        tokenizer.encode.side_effect = (
            lambda text, truncation=None, max_length=None, add_special_tokens=True:
            ([1] if add_special_tokens else []) + [ord(c) for c in text])
        tokenizer.decode.side_effect = (  # id 1: a special token (BOS)
            lambda ids, skip_special_tokens=False: "".join(
                ("" if skip_special_tokens else "<s>") if i == 1 else chr(i)
                for i in ([ids] if isinstance(ids, int) else ids)))
        engine.get_tokenizer.return_value = tokenizer
        engine.generate.side_effect = self._generate
        self.engines.append(engine)
        return engine

    async def _generate(self, prompt: Any, sampling_params: Any, request_id: str,
                        **_: Any) -> AsyncIterator[RequestOutput]:
        assert isinstance(sampling_params, vllm.SamplingParams)
        ids = list(prompt["prompt_token_ids"])
        top = sampling_params.prompt_logprobs
        if top is not None and len(ids) > 2:  # a chunked prefill: part of the prompt's first
            yield _output(request_id, "", 0, None, False, prompt=ids,
                          prompt_logprobs=_prompt_logprobs(ids, top, upto=2))
        n = min(sampling_params.max_tokens or len(WORDS), len(WORDS))
        for i in range(n):
            await asyncio.sleep(self.delay_s)
            last = i == n - 1
            reason = ("length" if n < len(WORDS) else "stop") if last else None
            yield _output(request_id, "".join(WORDS[: i + 1]), i + 1, reason, last,
                          sampling_params.logprobs, ids, _prompt_logprobs(ids, top))


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    made = Fakes()
    monkeypatch.setattr(vllm.AsyncLLMEngine, "from_engine_args", made.from_engine_args)
    return made


def test_async_llm_engine_is_async_llm_and_has_what_the_engine_reads() -> None:
    """What the adapter touches exists on the real classes (it once called a
    ``get_model_config()`` vLLM does not have)."""
    assert vllm.AsyncLLMEngine is AsyncLLM
    assert not hasattr(AsyncLLM, "get_model_config")
    init = inspect.getsource(AsyncLLM.__init__)
    assert "self.model_config = " in init
    assert "max_model_len" in {f.name for f in dataclasses.fields(ModelConfig)}
    for name in ("from_engine_args", "get_tokenizer", "generate", "abort", "shutdown"):
        assert callable(getattr(AsyncLLM, name)), name
    assert inspect.iscoroutinefunction(AsyncLLM.abort)
    assert inspect.isasyncgenfunction(AsyncLLM.generate)


def test_load_render_tokenize_generate(fakes: Fakes) -> None:
    async def scenario() -> None:
        engine = VLLMEngine("org/m", tensor_parallel_size=2, context_length=2048)
        assert not engine.ready()
        await engine.load()
        assert engine.ready() and engine.context_length == MAX_MODEL_LEN
        args = fakes.args[0]
        assert (args.model, args.tensor_parallel_size, args.max_model_len) == ("org/m", 2, 2048)
        chat = await engine.render_chat([{"role": "user", "content": "hi"}])
        assert chat.text == "<user>hi<assistant>" and chat.add_bos is False
        ids = await engine.tokenize(chat.text, add_bos=chat.add_bos)
        assert len(ids) == len(chat.text)
        params = SamplingParams(max_tokens=3, temperature=0.0, stop=("\n",), seed=7)
        chunks = [c async for c in engine.generate(PreparedPrompt(chat.text, ids), params)]
        assert [c.text for c in chunks] == ["Hello", " there", ","]
        assert sum(c.tokens for c in chunks) == 3
        assert chunks[-1].finish_reason == "length"
        llm = fakes.engines[0]
        prompt, sampling, _request_id = llm.generate.call_args.args
        assert prompt == vllm.TokensPrompt(prompt_token_ids=ids)
        assert sampling.temperature == 0.0 and sampling.stop == ["\n"]
        assert sampling.top_k == 0 and sampling.seed == 7  # 0: vLLM's canonical "off"
        llm.abort.assert_not_called()

    asyncio.run(scenario())


def test_sampling_values_the_api_allows_are_accepted_by_real_sampling_params(
        fakes: Fakes) -> None:
    async def scenario() -> None:
        engine = VLLMEngine("org/m")
        await engine.load()
        for params in (SamplingParams(max_tokens=1, top_k=0, top_p=1.0),
                       SamplingParams(max_tokens=2, top_k=40, temperature=1.5, seed=None,
                                      presence_penalty=2.0, frequency_penalty=-2.0,
                                      ignore_eos=True),
                       SamplingParams(max_tokens=1, logit_bias=((5, -100.0), (7, 100.0)))):
            chunks = [c async for c in engine.generate(PreparedPrompt("x", [1]), params)]
            assert chunks[-1].finish_reason is not None
        sampling = fakes.engines[0].generate.call_args.args[1]
        assert sampling.logit_bias == {5: -100.0, 7: 100.0}  # as vLLM's SamplingParams holds it

    asyncio.run(scenario())


def test_closing_the_stream_aborts_the_request(fakes: Fakes) -> None:
    async def scenario() -> None:
        engine = VLLMEngine("org/m")
        await engine.load()
        stream = engine.generate(PreparedPrompt("x", [1, 2]), SamplingParams(max_tokens=5))
        first = await stream.__anext__()
        assert first.text == "Hello"
        await stream.aclose()
        llm = fakes.engines[0]
        request_id = llm.generate.call_args.args[2]
        llm.abort.assert_awaited_once_with(request_id)

    asyncio.run(scenario())


def test_close_shuts_the_engine_down(fakes: Fakes) -> None:
    async def scenario() -> None:
        engine = VLLMEngine("org/m")
        await engine.load()
        await engine.close()
        fakes.engines[0].shutdown.assert_called_once_with()
        assert not engine.ready()

    asyncio.run(scenario())


def test_a_dead_engine_core_fails_health_so_the_pod_is_restarted(fakes: Fakes) -> None:
    """Before: ready() was "loaded", so /health stayed 200 after the engine core died and
    every request failed until someone deleted the pod."""
    assert isinstance(inspect.getattr_static(AsyncLLM, "errored"), property)
    cfg = ServeConfig(model="org/m", model_name="m", engine="vllm", max_queue=2)
    server = LoopbackServer(cfg).start()
    try:
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        fakes.engines[0].errored = True  # engine_core.resources.engine_dead
        assert httpx.get(server.url + "/health", timeout=5).status_code == 503
    finally:
        server.stop()


def test_vllm_engine_behind_the_api(fakes: Fakes) -> None:
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


def test_logprobs_are_asked_of_vllm_and_read_from_its_sample_logprobs(fakes: Fakes) -> None:
    async def scenario() -> None:
        engine = VLLMEngine("org/m")
        assert engine.max_logprobs == 0  # nothing to report before the model is loaded
        await engine.load()
        assert engine.max_logprobs == 20
        params = SamplingParams(max_tokens=5, logprobs=3)
        chunks = [c async for c in engine.generate(PreparedPrompt("x", [1]), params)]
        sampling = fakes.engines[0].generate.call_args.args[1]
        assert sampling.logprobs == 3
        entries = [e for c in chunks for e in c.logprobs]
        assert [e.token for e in entries] == WORDS
        assert [len(c.logprobs) for c in chunks] == [c.tokens for c in chunks]
        even, odd = entries[0], entries[1]
        assert (even.logprob, even.token_bytes) == (-0.5, b"Hello")
        assert [t for t, _, _ in even.top] == ["Hello", "alt2", "alt3"]  # chosen ranked 1st
        assert odd.logprob == -7.0  # ranked 99th: not among its alternatives
        assert [(t, lp) for t, _, lp in odd.top] == [("alt1", -0.5), ("alt2", -1.0),
                                                    ("alt3", -1.5)]
        plain = [c async for c in engine.generate(PreparedPrompt("x", [1]),
                                                  SamplingParams(max_tokens=2))]
        assert fakes.engines[0].generate.call_args.args[1].logprobs is None
        assert all(c.logprobs == () for c in plain)

    asyncio.run(scenario())


def test_logprobs_behind_the_api(fakes: Fakes) -> None:
    cfg = ServeConfig(model="org/m", model_name="m", engine="vllm", max_queue=2)
    server = LoopbackServer(cfg).start()
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10,
                "logprobs": True, "top_logprobs": 2}
        resp = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=10).json()
        content = resp["choices"][0]["logprobs"]["content"]
        assert [e["token"] for e in content] == WORDS
        assert [a["token"] for a in content[1]["top_logprobs"]] == ["alt1", "alt2"]
        body = {"model": "m", "prompt": "hi", "max_tokens": 3, "logprobs": 1}
        resp = httpx.post(server.url + "/v1/completions", json=body, timeout=10).json()
        assert resp["choices"][0]["logprobs"]["tokens"] == WORDS[:3]
        assert resp["choices"][0]["logprobs"]["text_offset"] == [0, 5, 11]
        too_many = httpx.post(server.url + "/v1/chat/completions", timeout=10, json={
            **body, "messages": [{"role": "user", "content": "hi"}], "logprobs": True,
            "top_logprobs": 21})
        assert too_many.status_code == 400
    finally:
        server.stop()


def test_what_vllm_or_the_chat_template_refuses_is_a_400_never_a_500(fakes: Fakes) -> None:
    """A template's raise_exception (Gemma: "System role not supported"), token ids outside
    the vocabulary, and vLLM's own request validation (VLLMValidationError, raised by the
    real SamplingParams here) answer 400 naming the parameter; streamed, an error event and
    [DONE] after the 200, never a cut-off stream."""
    cfg = ServeConfig(model="org/m", model_name="m", engine="vllm", max_queue=2)
    server = LoopbackServer(cfg).start()
    try:
        tokenizer = fakes.engines[0].get_tokenizer.return_value
        plain = tokenizer.apply_chat_template.side_effect

        def gemma(messages: list[dict[str, Any]], **kw: Any) -> str:
            if any(m["role"] == "system" for m in messages):
                raise jinja2.exceptions.TemplateError("System role not supported")
            return str(plain(messages, **kw))

        tokenizer.apply_chat_template.side_effect = gemma
        chat = server.url + "/v1/chat/completions"
        system = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        resp = httpx.post(chat, timeout=10, json={"model": "m", "messages": system})
        assert resp.status_code == 400, resp.text
        assert "System role not supported" in resp.json()["error"]["message"]
        assert resp.json()["error"]["param"] == "messages"

        user = [{"role": "user", "content": "hi"}]
        for body, param in (({"messages": user, "logit_bias": {str(VOCAB): 5}}, "logit_bias"),
                            ({"prompt": [VOCAB + 7]}, "prompt")):
            url = chat if "messages" in body else server.url + "/v1/completions"
            resp = httpx.post(url, timeout=10, json={"model": "m", "max_tokens": 2, **body})
            assert resp.status_code == 400, resp.text
            assert resp.json()["error"]["param"] == param

        async def refuse(*_: Any, **__: Any) -> AsyncIterator[RequestOutput]:
            raise VLLMValidationError("max_tokens is too large", parameter="max_tokens")
            yield  # an async generator, as AsyncLLM.generate

        fakes.engines[0].generate.side_effect = refuse
        resp = httpx.post(chat, timeout=10, json={"model": "m", "messages": user})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == "max_tokens"
        with httpx.stream("POST", chat, timeout=10, json={
                "model": "m", "messages": user, "stream": True}) as streamed:
            lines = [ln for ln in streamed.iter_lines() if ln]
        assert streamed.status_code == 200 and lines[-1] == "data: [DONE]"
        error = json.loads(lines[-2].removeprefix("data: "))["error"]
        assert error["param"] == "max_tokens" and error["type"] == "invalid_request_error"
        refused = [v for k, v in server.metrics().items()
                   if k.startswith("wattserve_requests_total{") and k.endswith("status=400}")]
        assert refused and refused[0] >= 4
    finally:
        server.stop()


CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_json_schemas_are_checked_by_vllms_own_backends_and_handed_to_vllm(
        fakes: Fakes) -> None:
    """xgrammar and llguidance run here for real (CPU); only the engine core is a fake."""
    async def scenario() -> None:
        engine = VLLMEngine("org/m")
        await engine.load()
        schema = json.dumps(CITY, sort_keys=True)
        await engine.check_json_schema(schema)
        for bad, says in (({"type": "object", "properties": {"a": {"type": "nosuchtype"}}},
                           "nosuchtype"),
                          ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum"),
                          ({"$ref": "#/defs/missing"}, "missing")):
            with pytest.raises(ValueError, match=says):
                await engine.check_json_schema(json.dumps(bad))
        params = SamplingParams(max_tokens=2, json_schema=schema)
        [c async for c in engine.generate(PreparedPrompt("x", [1]), params)]
        sampling = fakes.engines[0].generate.call_args.args[1]
        assert sampling.structured_outputs is not None
        assert sampling.structured_outputs.json == schema
        [c async for c in engine.generate(PreparedPrompt("x", [1]), SamplingParams(max_tokens=1))]
        assert fakes.engines[0].generate.call_args.args[1].structured_outputs is None

    asyncio.run(scenario())


def test_response_format_behind_the_api(fakes: Fakes) -> None:
    cfg = ServeConfig(model="org/m", model_name="m", engine="vllm", max_queue=2)
    server = LoopbackServer(cfg).start()
    try:
        chat = {"model": "m", "messages": [{"role": "user", "content": "a city?"}],
                "max_tokens": 5}
        fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}}
        ok = httpx.post(server.url + "/v1/chat/completions", timeout=10,
                        json={**chat, "response_format": fmt})
        assert ok.status_code == 200, ok.text
        sampling = fakes.engines[0].generate.call_args.args[1]
        assert json.loads(sampling.structured_outputs.json) == CITY
        ok = httpx.post(server.url + "/v1/chat/completions", timeout=10,
                        json={**chat, "response_format": {"type": "json_object"}})
        assert ok.status_code == 200, ok.text
        assert json.loads(fakes.engines[0].generate.call_args.args[1]
                          .structured_outputs.json) == {"type": "object"}
        bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}
        refused = httpx.post(server.url + "/v1/chat/completions", timeout=10,
                             json={**chat, "response_format": bad})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "response_format"
        assert refused.json()["error"]["code"] == "invalid_value"
    finally:
        server.stop()


def test_tools_go_to_vllm_as_a_json_schema_its_backends_accept(fakes: Fakes) -> None:
    cfg = ServeConfig(model="org/m", model_name="m", engine="vllm", max_queue=2)
    server = LoopbackServer(cfg).start()
    try:
        nested = {"$defs": {"Place": CITY}, "type": "object",
                  "properties": {"home": {"$ref": "#/$defs/Place"}}, "required": ["home"]}
        tools = [{"type": "function", "function": {"name": "city", "parameters": CITY}},
                 {"type": "function", "function": {"name": "home", "parameters": nested}}]
        body = {"model": "m", "messages": [{"role": "user", "content": "a city?"}],
                "max_tokens": 5, "tools": tools, "tool_choice": "required"}
        resp = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        sampling = fakes.engines[0].generate.call_args.args[1]
        schema = json.loads(sampling.structured_outputs.json)
        items = schema["properties"]["tool_calls"]["items"]["anyOf"]
        assert [i["properties"]["name"] for i in items] == [{"const": "city"},
                                                            {"const": "home"}]
        assert items[0]["properties"]["arguments"] == CITY
        assert schema["$defs"]["tool1"]["properties"]["home"] == {
            "$ref": "#/$defs/tool1/$defs/Place"}  # accepted by xgrammar above, for real
        prompt = fakes.engines[0].generate.call_args.args[0]["prompt_token_ids"]
        assert "You can call these tools" in "".join(chr(t) for t in prompt[1:])
    finally:
        server.stop()


def test_prompt_logprobs_are_asked_of_vllm_and_read_from_its_prompt_logprobs(
        fakes: Fakes) -> None:
    """``prompt_logprobs=k`` goes to vLLM's SamplingParams; RequestOutput.prompt_logprobs (a
    FlatLogprobs over the prompt, position 0 None, complete only after the prefill's last
    chunk) becomes the first chunk's PromptLogprobs: the prompt token's own log probability
    and the k best by rank."""
    async def scenario() -> None:
        engine = VLLMEngine("org/m")
        await engine.load()
        ids = [1, ord("a"), ord("b"), ord("c")]
        params = SamplingParams(max_tokens=3, logprobs=1, prompt_logprobs=2)
        chunks = [c async for c in engine.generate(PreparedPrompt("abc", ids), params)]
        sampling = fakes.engines[0].generate.call_args.args[1]
        assert (sampling.prompt_logprobs, sampling.logprobs, sampling.max_tokens) == (2, 1, 3)
        assert [c.prompt is not None for c in chunks] == [True, False, False]
        assert [c.text for c in chunks] == ["Hello", " there", ","]  # the prefill chunk: none
        prompt = chunks[0].prompt
        assert prompt is not None and prompt.first == ""  # the BOS, as the echoed text has it
        assert [(e.token, e.logprob) for e in prompt.rest] == [("a", -4.0), ("b", -5.0),
                                                               ("c", -6.0)]
        assert [[(t, lp) for t, _, lp in e.top] for e in prompt.rest] == \
            [[("p1", -0.25), ("p2", -0.5)]] * 3
        assert [e.token for c in chunks for e in c.logprobs] == WORDS[:3]
        # max_tokens 0: the prompt's alone; vLLM computes one token, which is not sent.
        alone = SamplingParams(max_tokens=0, logprobs=1, prompt_logprobs=0)
        chunks = [c async for c in engine.generate(PreparedPrompt("abc", ids), alone)]
        sampling = fakes.engines[0].generate.call_args.args[1]
        assert (sampling.max_tokens, sampling.logprobs, sampling.prompt_logprobs) == (1, None, 0)
        assert len(chunks) == 1
        assert (chunks[0].text, chunks[0].tokens, chunks[0].finish_reason) == ("", 0, "length")
        assert chunks[0].prompt is not None and len(chunks[0].prompt.rest) == 3
        assert all(e.top == () for e in chunks[0].prompt.rest)
        fakes.engines[0].abort.assert_not_called()  # it finished
        # ... and without log probabilities vLLM is not asked at all.
        calls = fakes.engines[0].generate.call_count
        plain = [c async for c in engine.generate(PreparedPrompt("abc", ids),
                                                  SamplingParams(max_tokens=0))]
        assert [(c.text, c.tokens, c.finish_reason) for c in plain] == [("", 0, "length")]
        assert fakes.engines[0].generate.call_count == calls

    asyncio.run(scenario())


def test_echo_logprobs_behind_the_api(fakes: Fakes) -> None:
    """lm-eval's loglikelihood request shape (token-id prompts, echo, logprobs 1, max_tokens
    1, temperature 0) on the vLLM engine: the prompt's tokens first (the first with null),
    then the generated one, text_offset along the echoed text."""
    cfg = ServeConfig(model="org/m", model_name="m", engine="vllm", max_queue=2)
    server = LoopbackServer(cfg).start()
    try:
        ids = [[ord(c) for c in "abc"], [ord(c) for c in "xy"]]
        body = {"model": "m", "prompt": ids, "max_tokens": 1, "logprobs": 1, "echo": True,
                "temperature": 0, "seed": 1234}
        resp = httpx.post(server.url + "/v1/completions", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        for choice, prompt in zip(resp.json()["choices"], ("abc", "xy"), strict=True):
            lp = choice["logprobs"]
            assert choice["text"] == prompt + "Hello"
            assert lp["tokens"] == [*prompt, "Hello"]
            assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
            assert lp["token_logprobs"][1:] == [-3.0 - j for j in range(1, len(prompt))] + [-0.5]
            assert lp["top_logprobs"][1] == {"p1": -0.25, prompt[1]: -4.0}
            assert lp["text_offset"] == list(range(len(prompt) + 1))
        sampling = fakes.engines[0].generate.call_args.args[1]
        assert (sampling.prompt_logprobs, sampling.logprobs) == (1, 1)
        alone = httpx.post(server.url + "/v1/completions", timeout=10,
                           json={**body, "prompt": "hi", "max_tokens": 0}).json()
        choice = alone["choices"][0]
        assert (choice["text"], choice["finish_reason"]) == ("hi", "length")
        assert choice["logprobs"]["tokens"] == ["", "h", "i"]  # the BOS: no text
        assert choice["logprobs"]["text_offset"] == [0, 0, 1]
        assert alone["usage"] == {"prompt_tokens": 3, "completion_tokens": 0,
                                  "total_tokens": 3}
    finally:
        server.stop()
