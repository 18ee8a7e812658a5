"""The two shapes of a completion's answer: one JSON body once every choice is done, or
server-sent events as tokens come (OpenAI's chunk objects, `usage` in its own chunk when
asked, then ``[DONE]``). Both take the request already admitted (its ticket) and prepared
(its work) by `openai_api.ServingAPI`, whose `tokens` records the token metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NamedTuple

from starlette.responses import JSONResponse, Response

from wattserve_serving import schemas as S
from wattserve_serving import tools as T
from wattserve_serving.admission import Ticket
from wattserve_serving.choices import (
    StreamedChoice,
    Work,
    each_choice,
    echoes_logprobs,
    logprobs_of,
    tool_mode,
)
from wattserve_serving.engines.base import (
    EngineError,
    InvalidRequest,
    PromptLogprobs,
    TokenLogprob,
)
from wattserve_serving.errors import APIError
from wattserve_serving.streaming import DONE, GuardedStreamingResponse, sse

if TYPE_CHECKING:
    from wattserve_serving.openai_api import ServingAPI

log = logging.getLogger("wattserve_serving")

CLIENT_CLOSED = 499  # nginx's "client closed request", on REQUESTS_TOTAL only


class Admitted(NamedTuple):
    """A request past validation and admission: what either answer is built from."""

    req: S.ChatCompletionRequest | S.CompletionRequest
    chat: bool
    work: Work
    ticket: Ticket
    start: float  # perf_counter() when the request arrived


async def complete(api: ServingAPI, admitted: Admitted) -> Response:
    """Every choice generated, then one chat.completion or text_completion object (500
    OpenAI-style when the engine fails)."""
    return JSONResponse(await completed(api, admitted))


async def completed(api: ServingAPI, admitted: Admitted) -> dict[str, Any]:
    """The chat.completion or text_completion object, once every choice is generated."""
    req, chat, work, ticket, start = admitted
    choices: list[S.Choice] = []
    produced = 0
    scored: dict[int, PromptLogprobs] = {}  # each prompt's log probabilities (echo)
    async with ticket:
        for index, prompt, params in each_choice(req, work):
            echo = prompt.text if isinstance(req, S.CompletionRequest) and req.echo else ""
            parts: list[str] = [echo]
            entries: list[TokenLogprob] = []
            finish = "stop"
            try:
                async for chunk in api.tokens(prompt, params, start, index, req.n):
                    if chunk.prompt is not None:
                        scored[index // req.n] = chunk.prompt
                    parts.append(chunk.text)
                    entries.extend(chunk.logprobs)
                    produced += chunk.tokens
                    finish = chunk.finish_reason or finish
                echoed = echoed_logprobs(req, scored, index)
            except InvalidRequest as exc:
                raise invalid(exc) from exc
            except EngineError as exc:
                log.error("generation failed: %s", exc)
                raise APIError(500, "generation failed", type_="server_error") from exc
            choices.append(("".join(parts), finish,
                            logprobs_of(params, chat, entries, len(echo), echoed)))
    usage = S.usage(sum(len(p.token_ids) for p, _ in work), produced)
    if chat:
        how = tool_mode(req)
        answers = [(*T.answer(text, finish, how), lp) for text, finish, lp in choices]
        return S.chat_response(S.new_id("chatcmpl"), api.model_name, answers, usage)
    return S.completion_response(S.new_id("cmpl"), api.model_name, choices, usage)


def stream(api: ServingAPI, admitted: Admitted) -> Response:
    """Chunks as tokens come; the request's status is recorded when the stream closes (499
    when the client left first). A failure mid-stream (the engine's, or any other; a 400
    when the engine's own validation refused the request) ends it with an error event and
    ``[DONE]``: the 200 is already sent."""
    req, chat, work, ticket, start = admitted
    done = StreamEnd(api, admitted)

    async def events() -> AsyncIterator[bytes]:
        rid = S.new_id("chatcmpl" if chat else "cmpl")
        created, model = S.now(), api.model_name
        # `usage` only when asked for (stream_options.include_usage), in its own chunk.
        include_usage = req.stream_options is not None and req.stream_options.include_usage
        produced = 0
        echo = isinstance(req, S.CompletionRequest) and req.echo
        scored: dict[int, PromptLogprobs] = {}  # each prompt's log probabilities (echo)

        def chunk_event(payload: dict[str, Any]) -> bytes:
            """One chunk; with ``include_usage`` each carries ``usage`` (null until the
            last, as OpenAI documents it)."""
            if include_usage:
                payload.setdefault("usage", None)
            return sse(payload)

        def echoed(i: int, text: str) -> bytes:
            """The echoed prompt of choice ``i``, with its log probabilities when asked."""
            lp = echoed_logprobs(req, scored, i)
            logprobs = None if lp is None else S.completion_logprobs([], 0, lp)
            return chunk_event(S.completion_chunk(rid, model, created, text, index=i,
                                                  logprobs=logprobs))

        try:
            async with ticket:
                for i, prompt, params in each_choice(req, work):
                    # With logprobs the echo waits for the prompt's (the engine's first
                    # chunk, or choice 0's); without, it goes first.
                    pending = echoes_logprobs(req) and i // req.n not in scored
                    if chat:
                        role = {"role": "assistant", "content": "", "refusal": None}
                        yield chunk_event(S.chat_chunk(rid, model, created, role, index=i))
                    elif echo and not pending:
                        yield echoed(i, prompt.text)
                    out = StreamedChoice(chat, params, tool_mode(req),
                                         len(prompt.text) if echo else 0)
                    async for chunk in api.tokens(prompt, params, start, i, req.n):
                        if pending:
                            if chunk.prompt is not None:
                                scored[i // req.n] = chunk.prompt
                            yield echoed(i, prompt.text)  # EngineError when none came
                            pending = False
                        produced += chunk.tokens
                        piece = out.feed(chunk)
                        if piece is None:
                            continue
                        body, finish, lp = piece
                        maker = S.chat_chunk if chat else S.completion_chunk
                        payload = maker(rid, model, created, body, finish, index=i,
                                        logprobs=lp)
                        yield chunk_event(payload)
            if include_usage:
                usage = S.usage(sum(len(p.token_ids) for p, _ in work), produced)
                maker = S.chat_chunk if chat else S.completion_chunk
                yield sse(maker(rid, model, created, None, None, usage))
            yield DONE
            done.status = 200
        except InvalidRequest as exc:  # the engine's own validation, after the 200
            done.status = 400
            yield sse(invalid(exc).body())
            yield DONE
        except APIError as exc:  # refused after the 200 (the server began shutting down)
            done.status = exc.status
            yield sse(exc.body())
            yield DONE
        except Exception:  # any failure, not only the engine's: never a cut-off stream
            log.exception("generation failed")
            done.status = 500
            yield sse(APIError(500, "generation failed", type_="server_error").body())
            yield DONE

    return GuardedStreamingResponse(events(), on_close=done.record)


class StreamEnd:
    """A stream's status (499 until it ends by itself), recorded once when it closes, with
    the request's ticket given back whatever happened."""

    def __init__(self, api: ServingAPI, admitted: Admitted) -> None:
        self.api, self.ticket, self.start = api, admitted.ticket, admitted.start
        self.status = CLIENT_CLOSED
        self.recorded = False

    def record(self) -> None:
        self.ticket.abandon()
        if not self.recorded:
            self.recorded = True
            self.api.metrics.request_done(self.status, time.perf_counter() - self.start)


def invalid(exc: InvalidRequest) -> APIError:
    """The 400 for a request the engine's own validation refused."""
    return APIError(400, f"Invalid request: {exc}", param=exc.param, code="invalid_value")


def echoed_logprobs(req: S.ChatCompletionRequest | S.CompletionRequest,
            scored: dict[int, PromptLogprobs], index: int) -> PromptLogprobs | None:
    """The log probabilities of choice ``index``'s echoed prompt (computed with the prompt's
    first choice); None when not asked for. EngineError when the engine gave none."""
    if not echoes_logprobs(req):
        return None
    prompt = scored.get(index // req.n)
    if prompt is None:
        raise EngineError("the engine returned no log probabilities for the prompt")
    return prompt
