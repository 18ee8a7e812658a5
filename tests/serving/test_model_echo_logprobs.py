"""The prompt's own log probabilities (completions ``echo`` with ``logprobs``) with the real
SmolLM2 model and the official `openai` client: equal to a second, independent llama.cpp
instance's logits for every prompt position, shaped as OpenAI's and vLLM's legacy format
(the prompt's tokens first, the first one null), for text and token-id prompts, several
prompts and ``n`` choices, streamed equal to unstreamed, ``max_tokens`` 0; lm-evaluation-
harness's ``local-completions`` loglikelihood request answered and parsed as lm-eval does;
the engine left exactly as a plain request leaves it; and the 400s for what is not served."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from serving_helpers import LoopbackServer, log_softmax

pytestmark = pytest.mark.model

# 94 tokens: more than two of the engine's scoring blocks (42 positions for SmolLM2).
TEXT = ("The tide came in slowly over the flat grey sand, filling the pools between the rocks "
        "where small crabs hid from the gulls. An old fisherman walked along the shore with "
        "his dog, counting the boats that had gone out before dawn and wondering whether the "
        "wind would turn before they came home. Far out, a lighthouse blinked twice, then "
        "once, as it had every night for a hundred years, and the village behind the dunes "
        "slept under a sky full of stars.")
SHORT = "Tide pools along the rocky coast hold"


def _reference_rows(reference: Any, ids: list[int]) -> np.ndarray:
    """Row i: the log-softmax after ids[: i + 1]."""
    reference.reset()
    reference.eval(ids)
    return np.stack([log_softmax(np.asarray(reference.scores[i])) for i in range(len(ids))])


def _piece(reference: Any, token: int) -> str:
    return bytes(reference.detokenize([token])).decode("utf-8", errors="replace")


def _lp(choice: Any) -> Any:
    lp = choice.logprobs
    assert lp is not None
    assert lp.tokens is not None and lp.token_logprobs is not None
    assert lp.top_logprobs is not None and lp.text_offset is not None
    return lp


def test_prompt_logprobs_are_llama_cpps_own(client: openai.OpenAI, reference: Any) -> None:
    ids = reference.tokenize(TEXT.encode(), add_bos=True)
    assert len(ids) > 2 * 42
    resp = client.completions.create(model="smollm2", prompt=TEXT, max_tokens=1,
                                     temperature=0, logprobs=5, echo=True)
    choice = resp.choices[0]
    lp = _lp(choice)
    assert choice.text.startswith(TEXT)
    assert len(lp.tokens) == len(ids) + 1  # the prompt's tokens, then the generated one
    assert resp.usage is not None and resp.usage.prompt_tokens == len(ids)
    assert lp.tokens[: len(ids)] == [_piece(reference, t) for t in ids]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    rows = _reference_rows(reference, ids)
    for i in range(1, len(ids)):
        ref = rows[i - 1]
        assert lp.token_logprobs[i] == pytest.approx(ref[ids[i]], abs=2e-3), i
        top = lp.top_logprobs[i]
        best = np.argsort(-ref)[:5]
        # The 5 most likely tokens, and the prompt's own token (OpenAI's logprobs + 1).
        assert {_piece(reference, int(t)) for t in best} | {lp.tokens[i]} == set(top), i
        assert top[lp.tokens[i]] == lp.token_logprobs[i]
        for t in best:
            assert top[_piece(reference, int(t))] == pytest.approx(ref[t], abs=2e-3)
    # The generated token: the greedy one after the whole prompt.
    greedy = int(rows[-1].argmax())
    assert lp.tokens[-1] == _piece(reference, greedy)
    assert lp.token_logprobs[-1] == pytest.approx(rows[-1][greedy], abs=2e-3)
    # text_offset: each token's text where it stands in the echoed text.
    for token, offset in zip(lp.tokens, lp.text_offset, strict=True):
        assert choice.text[offset: offset + len(token)] == token
    assert lp.text_offset[len(ids)] == len(TEXT)


def test_scoring_in_smaller_blocks_gives_the_same_numbers(
        client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block size bounds memory, not the answer: blocks of two positions (the least: a
    one-token batch is computed by another path, with other numbers) score the prompt as
    one block does, and so do blocks that leave the last prompt token alone in a block."""
    from wattserve_serving.engines import llamacpp_score

    def ask() -> Any:
        return _lp(client.completions.create(model="smollm2", prompt=SHORT, max_tokens=0,
                                             logprobs=3, echo=True).choices[0])

    whole = ask()
    n = len(whole.tokens)
    assert n > 4
    monkeypatch.setattr(llamacpp_score, "PROMPT_LOGITS_BYTES", (n - 1) * 4 * 49152)  # n-1, 1
    blocks = ask()
    assert blocks.tokens == whole.tokens
    assert blocks.token_logprobs[1:] == pytest.approx(whole.token_logprobs[1:], abs=1e-4)
    monkeypatch.setattr(llamacpp_score, "PROMPT_LOGITS_BYTES", 1)  # the smallest block: 2
    assert ask().token_logprobs[1:] == pytest.approx(whole.token_logprobs[1:], abs=1e-4)


def test_token_id_prompts_several_prompts_and_n_choices_each_echo_their_prompt(
        client: openai.OpenAI, reference: Any) -> None:
    a = reference.tokenize(SHORT.encode(), add_bos=False)
    b = reference.tokenize(b"The lighthouse blinked twice", add_bos=False)
    resp = client.completions.create(model="smollm2", prompt=[a, b], n=2, max_tokens=3,
                                     temperature=1.0, seed=5, logprobs=2, echo=True,
                                     extra_body={"ignore_eos": True})
    assert [c.index for c in resp.choices] == [0, 1, 2, 3]
    assert resp.usage is not None and resp.usage.prompt_tokens == len(a) + len(b)
    assert resp.usage.completion_tokens == 4 * 3
    for choice in resp.choices:
        ids = a if choice.index < 2 else b
        text = bytes(reference.detokenize(ids)).decode()
        lp = _lp(choice)
        assert choice.text.startswith(text)
        assert len(lp.tokens) == len(ids) + 3
        assert lp.tokens[: len(ids)] == [_piece(reference, t) for t in ids]
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        assert all(v is not None for v in lp.token_logprobs[1:])
        assert "".join(lp.tokens) == choice.text
        assert lp.text_offset[len(ids)] == len(text)
        # The prompt's entries: those of the same prompt asked alone.
        alone = _lp(client.completions.create(model="smollm2", prompt=ids, max_tokens=0,
                                              logprobs=2, echo=True).choices[0])
        assert lp.tokens[: len(ids)] == alone.tokens
        assert lp.token_logprobs[: len(ids)] == alone.token_logprobs
        assert lp.top_logprobs[: len(ids)] == alone.top_logprobs


def test_max_tokens_0_echoes_the_prompt_alone(client: openai.OpenAI, reference: Any) -> None:
    ids = reference.tokenize(SHORT.encode(), add_bos=True)
    resp = client.completions.create(model="smollm2", prompt=SHORT, max_tokens=0, logprobs=1,
                                     echo=True)
    choice = resp.choices[0]
    assert choice.text == SHORT and choice.finish_reason == "length"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (len(ids), 0)
    lp = _lp(choice)
    assert len(lp.tokens) == len(ids) and "".join(lp.tokens) == SHORT
    assert lp.token_logprobs[0] is None
    # Without logprobs: the prompt's text alone.
    plain = client.completions.create(model="smollm2", prompt=SHORT, max_tokens=0, echo=True)
    assert plain.choices[0].text == SHORT and plain.choices[0].logprobs is None


def _streamed(client: openai.OpenAI, **kw: Any) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"text": "", "tokens": [], "token_logprobs": [], "top_logprobs": [],
                 "text_offset": [], "finish": None, "chunks": 0})
    for chunk in client.completions.create(model="smollm2", stream=True, **kw):
        for c in chunk.choices:
            got = out[c.index]
            got["text"] += c.text
            got["chunks"] += 1
            got["finish"] = c.finish_reason or got["finish"]
            if c.logprobs is not None:
                for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                    got[key] += getattr(c.logprobs, key) or []
    return out


def test_streamed_echo_logprobs_equal_unstreamed(client: openai.OpenAI) -> None:
    kw: dict[str, Any] = {"prompt": [SHORT, TEXT[:80]], "n": 2, "max_tokens": 4,
                          "temperature": 0, "logprobs": 2, "echo": True}
    client.completions.create(model="smollm2", **{**kw, "echo": False})  # warm-up: repeats
    whole = client.completions.create(model="smollm2", **kw)
    streamed = _streamed(client, **kw)
    assert sorted(streamed) == [0, 1, 2, 3]
    for choice in whole.choices:
        got, lp = streamed[choice.index], _lp(choice)
        assert got["text"] == choice.text and got["finish"] == choice.finish_reason
        assert got["tokens"] == lp.tokens and got["token_logprobs"] == lp.token_logprobs
        assert got["top_logprobs"] == lp.top_logprobs and got["text_offset"] == lp.text_offset
    # The prompt alone, streamed: its text and entries, then the finish.
    alone = _streamed(client, prompt=SHORT, max_tokens=0, logprobs=1, echo=True)[0]
    assert alone["text"] == SHORT and alone["finish"] == "length"
    assert alone["token_logprobs"][0] is None and len(alone["tokens"]) > 3


def _lm_eval_parse(response: dict[str, Any], ctxlens: list[int],
                   upto: int | None = -1) -> list[tuple[float, bool]]:
    """lm-eval's `LocalCompletionsAPI.parse_logprobs`: the continuation's log probabilities
    (``token_logprobs[ctxlen:-1]``: the last one is the generated token) summed, and
    is_greedy: each is its position's best in ``top_logprobs``. Older lm-eval versions sent
    ``max_tokens`` 0 and read ``[ctxlen:]`` (``upto`` None)."""
    out = []
    for choice, ctxlen in zip(sorted(response["choices"], key=lambda c: c["index"]), ctxlens,
                              strict=True):
        assert ctxlen > 0
        logprobs = choice["logprobs"]["token_logprobs"][ctxlen:upto]
        tops = choice["logprobs"]["top_logprobs"][ctxlen:upto]
        greedy = all(lp == max(top.values()) for lp, top in zip(logprobs, tops, strict=True))
        out.append((sum(logprobs), greedy))
    return out


def test_lm_eval_local_completions_loglikelihood_request(
        model_server: LoopbackServer, reference: Any) -> None:
    """lm-eval's exact payload (`LocalCompletionsAPI._create_payload(generate=False)`):
    token-id prompts (context + continuation, no BOS: its default), a batch of them,
    ``echo``, ``logprobs`` 1, ``max_tokens`` 1, ``temperature`` 0, ``seed`` 1234, sent
    as plain JSON as lm-eval's `requests`/`aiohttp` calls do."""
    context = reference.tokenize(b"The capital of France is", add_bos=False)
    rows = _reference_rows(reference, context)
    greedy = [int(rows[-1].argmax())]
    reference.eval(greedy)
    greedy.append(int(log_softmax(np.asarray(reference.scores[len(context)])).argmax()))
    unlikely = reference.tokenize(b" a purple elephant", add_bos=False)
    requests = [(context, greedy), (context, unlikely)]
    payload = {"model": "smollm2", "prompt": [c + k for c, k in requests], "temperature": 0,
               "max_tokens": 1, "logprobs": 1, "seed": 1234, "echo": True}
    resp = httpx.post(model_server.url + "/v1/completions", json=payload, timeout=120)
    assert resp.status_code == 200, resp.text
    ctxlens = [len(c) for c, _ in requests]
    answers = _lm_eval_parse(resp.json(), ctxlens)
    for (ctx, cont), (total, is_greedy) in zip(requests, answers, strict=True):
        ref = _reference_rows(reference, ctx + cont)
        expected = sum(ref[len(ctx) - 1 + j][t] for j, t in enumerate(cont))
        assert total == pytest.approx(expected, abs=5e-3)
        assert is_greedy == all(int(ref[len(ctx) - 1 + j].argmax()) == t
                                for j, t in enumerate(cont))
    assert [g for _, g in answers] == [True, False]
    # lm-eval's older payload: max_tokens 0, the continuation read to the end.
    old = httpx.post(model_server.url + "/v1/completions", timeout=120,
                     json={**payload, "max_tokens": 0}).json()
    assert _lm_eval_parse(old, ctxlens, upto=None) == answers  # the same scoring pass


def test_a_plain_request_after_an_echo_request_answers_exactly_as_after_a_plain_one(
        client: openai.OpenAI) -> None:
    """Scoring a prompt puts the engine's KV cache back as it found it, so the echo request
    generates, and leaves the engine, exactly as the same request without echo: a plain
    request answers (text and log probabilities) as it did before, when the echo scored its
    prompt or only scored another (max_tokens 0), and as after the same request without
    echo, when it generated after another prompt. (llama.cpp's numbers depend on what the
    cache held: answers compared are all repeats.)"""
    plain: dict[str, Any] = {"model": "smollm2", "prompt": TEXT, "max_tokens": 6,
                             "logprobs": 5, "temperature": 0, "extra_body": {"ignore_eos": True}}
    seeded = {**plain, "temperature": 1.0, "seed": 9}
    other = {**plain, "prompt": "Seven ships sailed west", "max_tokens": 2, "logprobs": 1}

    def answer(kw: dict[str, Any]) -> tuple[str, Any]:
        choice = client.completions.create(**kw).choices[0]
        lp = _lp(choice)
        return choice.text, (lp.tokens, lp.token_logprobs, lp.top_logprobs)

    def answers() -> list[tuple[str, Any]]:
        return [answer(plain), answer(seeded)]

    client.completions.create(**plain)  # warm-up: what follows are repeats
    before = answers()
    echoed = client.completions.create(**{**seeded, "echo": True}).choices[0]
    lp = _lp(echoed)
    n_prompt = len(lp.tokens) - 6
    assert echoed.text == TEXT + before[1][0]
    assert (lp.tokens[n_prompt:], lp.token_logprobs[n_prompt:],
            lp.top_logprobs[n_prompt:]) == before[1][1]
    assert answers() == before
    client.completions.create(**{**other, "echo": True, "max_tokens": 0})  # scored alone
    assert answers() == before
    after: dict[bool, list[tuple[str, Any]]] = {}
    for echo in (False, True):
        client.completions.create(**{**other, "echo": echo})
        client.completions.create(**plain)  # the cache holds TEXT again
        after[echo] = answers()
    assert after[True] == after[False]


async def _run(engine: Any, prompt: Any, params: Any) -> list[Any]:
    return [c async for c in engine.generate(prompt, params)]


def _answer(chunks: list[Any]) -> tuple[str, list[tuple[str, float]]]:
    return "".join(c.text for c in chunks), [(e.token, e.logprob) for c in chunks
                                             for e in c.logprobs]


def test_scoring_while_another_request_generates_leaves_its_answer_unchanged(
        reference: Any) -> None:
    """With ``parallel`` 2 an echo request arrives while another generates: its scoring
    pass runs between the other's tokens (which own the KV cache then), and the other's
    answer is exactly the one it gets alone."""
    from wattserve_serving.engines.base import PreparedPrompt, SamplingParams
    from wattserve_serving.engines.llamacpp import LlamaCppEngine

    from serving_helpers import smollm2_path

    long = PreparedPrompt(TEXT, reference.tokenize(TEXT.encode(), add_bos=True))
    short = PreparedPrompt(SHORT, reference.tokenize(SHORT.encode(), add_bos=True))
    running = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True, logprobs=2)
    echo = SamplingParams(max_tokens=2, temperature=0.0, logprobs=1, prompt_logprobs=1)

    async def scenario(with_echo: bool) -> tuple[Any, Any]:
        engine = LlamaCppEngine(str(smollm2_path()), 2, 512, parallel=2)
        await engine.load()
        try:
            if not with_echo:
                return await _run(engine, long, running), None
            stream = engine.generate(long, running)
            first = [await stream.__anext__()]
            other = asyncio.create_task(_run(engine, short, echo))
            rest = [c async for c in stream]
            return first + rest, await other
        finally:
            await engine.close()

    alone, _ = asyncio.run(scenario(False))
    together, scored = asyncio.run(scenario(True))
    assert _answer(together) == _answer(alone)
    assert scored[0].prompt is not None and len(scored[0].prompt.rest) == len(short.token_ids) - 1
    assert sum(c.tokens for c in scored) == 2


def test_a_scoring_cancelled_midway_leaves_the_engine_as_it_was(
        monkeypatch: pytest.MonkeyPatch, reference: Any) -> None:
    """A client that leaves while its prompt is scored stops the pass at the next block
    (checked before each), and the KV cache is put back: a plain request answers exactly
    as before."""
    from wattserve_serving.engines import llamacpp, llamacpp_score
    from wattserve_serving.engines.base import PreparedPrompt, SamplingParams

    from serving_helpers import smollm2_path

    prompt = PreparedPrompt(TEXT, reference.tokenize(TEXT.encode(), add_bos=True))
    plain = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True, logprobs=3)
    jobs: list[Any] = []
    blocks: list[int] = []
    score, logprobs = llamacpp.LlamaCppEngine._score_prompt, llamacpp_score.token_logprobs

    def scoring(self: Any, job: Any) -> Any:
        jobs.append(job)
        return score(self, job)

    def block(*args: Any) -> Any:
        blocks.append(len(args[1]))
        if len(blocks) == 3:
            jobs[-1].cancel.set()  # as the API does when the client leaves
        return logprobs(*args)

    monkeypatch.setattr(llamacpp.LlamaCppEngine, "_score_prompt", scoring)
    monkeypatch.setattr(llamacpp_score, "token_logprobs", block)
    monkeypatch.setattr(llamacpp_score, "PROMPT_LOGITS_BYTES", 8 * 4 * 49152)  # 8 positions

    async def scenario() -> tuple[Any, Any, Any]:
        engine = llamacpp.LlamaCppEngine(str(smollm2_path()), 2, 512)
        await engine.load()
        try:
            await _run(engine, prompt, plain)  # warm-up: what follows are repeats
            before = await _run(engine, prompt, plain)
            cancelled = await _run(engine, prompt, SamplingParams(
                max_tokens=4, logprobs=1, prompt_logprobs=1))
            return before, cancelled, await _run(engine, prompt, plain)
        finally:
            await engine.close()

    before, cancelled, after = asyncio.run(scenario())
    assert cancelled == [] and blocks == [8, 8, 8]  # stopped after its third block
    assert _answer(after) == _answer(before)


def test_echo_requests_the_server_cannot_serve_are_400(client: openai.OpenAI) -> None:
    for kwargs, param in [({"logprobs": 6, "echo": True}, "logprobs"),  # OpenAI's bound: 5
                          ({"max_tokens": 0}, "max_tokens"),  # 0 only with echo
                          ({"max_tokens": -1, "echo": True}, "max_tokens"),
                          ({"echo": True, "logprobs": 1, "extra_body": {"prompt_logprobs": 1}},
                           "prompt_logprobs")]:  # vLLM's extension: refused, not ignored
        with pytest.raises(openai.BadRequestError) as err:
            client.completions.create(model="smollm2", prompt=SHORT,  # type: ignore
                                      **{"max_tokens": 1, **kwargs})
        assert err.value.body["param"] == param, kwargs  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm2", max_tokens=1,  # type: ignore
                                       messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"echo": True})
    assert err.value.body["param"] == "echo"  # type: ignore[index]
