"""The OpenAI-compatible request handlers, independent of the hosting server.

`ServingAPI` owns the engine, metrics, admission gate and energy meter; `app.py` mounts
its handlers on a FastAPI app for uvicorn, `ray_app.py` on a Ray Serve ingress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wattserve_serving import schemas as S
from wattserve_serving.admission import AdmissionGate, QueueFull, Ticket
from wattserve_serving.config import ServeConfig, pod_cpus
from wattserve_serving.energy import EnergyMeter, select_source
from wattserve_serving.engines.base import (
    Chunk,
    Engine,
    EngineError,
    EngineNotReady,
    PreparedPrompt,
    SamplingParams,
)
from wattserve_serving.errors import APIError, from_validation_error
from wattserve_serving.metrics import ServingMetrics
from wattserve_serving.streaming import DONE, GuardedStreamingResponse, sse

log = logging.getLogger("wattserve_serving")
M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 8 * 1024 * 1024
RETRY_AFTER_S = 1
CLIENT_CLOSED = 499  # nginx's "client closed request", on REQUESTS_TOTAL only


class ServingAPI:
    def __init__(self, config: ServeConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.model_name = config.served_model_name
        self.metrics = ServingMetrics(config.labels())
        self.gate = AdmissionGate(engine.max_concurrency, config.max_queue, self.metrics.set_load)
        self.energy: EnergyMeter | None = None
        self.load_error: str | None = None
        self.created = S.now()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------
    async def start(self, wait_for_model: bool = True) -> None:
        self.energy = EnergyMeter(select_source(pod_cpus()), self.metrics.add_energy)
        self._tasks.append(asyncio.create_task(self._energy_loop()))
        if wait_for_model:
            await self._load()
        else:
            self._tasks.append(asyncio.create_task(self._load()))

    async def _load(self) -> None:
        try:
            await self.engine.load()
            log.info("model %s loaded (%s)", self.model_name, self.engine.engine_name)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("model load failed: %s", self.load_error)

    async def _energy_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.energy_interval_s)
            if self.energy is not None:
                self.energy.sample()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        await self.engine.close()

    # -- small endpoints ---------------------------------------------------------
    async def health(self, request: Request) -> Response:
        if self.engine.ready():
            return JSONResponse({"status": "ok", "model": self.model_name})
        state = "error" if self.load_error else "loading"
        return JSONResponse({"status": state, "error": self.load_error}, status_code=503)

    async def metrics_endpoint(self, request: Request) -> Response:
        if self.energy is not None:
            self.energy.sample()
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def models(self, request: Request) -> Response:
        return JSONResponse(S.models_list(self.model_name, self.created))

    # -- generation endpoints ----------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        return await self._handle(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._handle(request, chat=False)

    async def _handle(self, request: Request, chat: bool) -> Response:
        start = time.perf_counter()
        status = 500
        streaming = False
        try:
            body = await _read_json(request)
            req: S.ChatCompletionRequest | S.CompletionRequest
            if chat:
                req = _validate(S.ChatCompletionRequest, body)
            else:
                req = _validate(S.CompletionRequest, body)
            self._check_model(req.model)
            self._check_ready()
            prompt, param = await self._prepare(req)
            params = self._sampling(req, len(prompt.token_ids), param)
            try:
                ticket = self.gate.reserve()
            except QueueFull:
                raise APIError(
                    429,
                    "Too many requests: the server queue is full, retry later.",
                    code="queue_full",
                    type_="rate_limit_error",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                ) from None
            if req.stream:
                streaming = True  # the stream records its own status when it ends
                return self._stream(req, chat, prompt, params, ticket, start)
            try:
                response = await self._complete(req, chat, prompt, params, ticket, start)
            finally:
                ticket.abandon()
            status = 200
            return response
        except APIError as exc:
            status = exc.status
            return exc.response()
        except EngineNotReady as exc:
            status = 503
            return _unavailable(str(exc)).response()
        except Exception as exc:
            log.exception("request failed")
            status = 500
            return APIError(500, f"internal error: {exc}", type_="server_error").response()
        finally:
            if not streaming:
                self.metrics.request_done(status, time.perf_counter() - start)

    def _check_model(self, model: str) -> None:
        if model not in (self.model_name, self.config.model):
            raise APIError(
                404,
                f"The model '{model}' does not exist; this server serves '{self.model_name}'.",
                param="model",
                code="model_not_found",
            )

    def _check_ready(self) -> None:
        if not self.engine.ready():
            raise _unavailable(self.load_error or "model is still loading")

    async def _prepare(
        self, req: S.ChatCompletionRequest | S.CompletionRequest
    ) -> tuple[PreparedPrompt, str]:
        if isinstance(req, S.ChatCompletionRequest):
            messages = [_message(m) for m in req.messages]
            try:
                chat = await self.engine.render_chat(messages)
            except (ValueError, TypeError) as exc:
                raise APIError(400, f"Invalid 'messages': {exc}", param="messages") from exc
            ids = await self.engine.tokenize(chat.text, add_bos=chat.add_bos)
            return PreparedPrompt(chat.text, ids, chat.stop), "messages"
        text = req.prompt_text()
        if text is None:
            raise APIError(
                400, "Invalid 'prompt': only one prompt per request is supported.",
                param="prompt", code="invalid_value",
            )
        ids = await self.engine.tokenize(text, add_bos=True)
        if not ids:
            raise APIError(400, "Invalid 'prompt': must not be empty.", param="prompt")
        return PreparedPrompt(text, ids), "prompt"

    def _sampling(
        self, req: S.ChatCompletionRequest | S.CompletionRequest, n_prompt: int, param: str
    ) -> SamplingParams:
        ctx = self.engine.context_length
        if n_prompt >= ctx:
            raise APIError(
                400,
                f"This model's maximum context length is {ctx} tokens, but '{param}' has "
                f"{n_prompt} tokens. Shorten '{param}'.",
                param=param,
                code="context_length_exceeded",
            )
        max_tokens = req.requested_max_tokens()
        if max_tokens is None:
            max_tokens = ctx - n_prompt
        elif n_prompt + max_tokens > ctx:
            name = "max_tokens"
            if isinstance(req, S.ChatCompletionRequest) and req.max_completion_tokens:
                name = "max_completion_tokens"
            raise APIError(
                400,
                f"'{name}' is too large: {max_tokens} + {n_prompt} prompt tokens exceeds this "
                f"model's maximum context length of {ctx} tokens.",
                param=name,
                code="context_length_exceeded",
            )
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p,
            top_k=req.top_k or 0,
            stop=req.stop_list(),
            seed=req.seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            ignore_eos=req.ignore_eos,
        )

    async def _tokens(
        self, prompt: PreparedPrompt, params: SamplingParams, start: float
    ) -> AsyncIterator[Chunk]:
        """Engine chunks, with token counters, TTFT and inter-token latency recorded."""
        self.metrics.prompt_tokens.inc(len(prompt.token_ids))
        last: float | None = None
        stream = self.engine.generate(prompt, params)
        try:
            async for chunk in stream:
                if chunk.tokens:
                    now = time.perf_counter()
                    self.metrics.generation_tokens.inc(chunk.tokens)
                    if last is None:
                        self.metrics.ttft.observe(now - start)
                    else:
                        gap = (now - last) / chunk.tokens
                        for _ in range(chunk.tokens):
                            self.metrics.itl.observe(gap)
                    last = now
                yield chunk
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _complete(
        self,
        req: S.ChatCompletionRequest | S.CompletionRequest,
        chat: bool,
        prompt: PreparedPrompt,
        params: SamplingParams,
        ticket: Ticket,
        start: float,
    ) -> Response:
        parts: list[str] = []
        produced, finish = 0, "stop"
        async with ticket:
            try:
                async for chunk in self._tokens(prompt, params, start):
                    parts.append(chunk.text)
                    produced += chunk.tokens
                    finish = chunk.finish_reason or finish
            except EngineError as exc:
                raise APIError(500, str(exc), type_="server_error") from exc
        text = "".join(parts)
        usage = S.usage(len(prompt.token_ids), produced)
        if chat:
            return JSONResponse(
                S.chat_response(S.new_id("chatcmpl"), self.model_name, text, finish, usage)
            )
        if isinstance(req, S.CompletionRequest) and req.echo:
            text = prompt.text + text
        return JSONResponse(
            S.completion_response(S.new_id("cmpl"), self.model_name, text, finish, usage)
        )

    def _stream(
        self,
        req: S.ChatCompletionRequest | S.CompletionRequest,
        chat: bool,
        prompt: PreparedPrompt,
        params: SamplingParams,
        ticket: Ticket,
        start: float,
    ) -> Response:
        done = {"status": CLIENT_CLOSED, "recorded": False}

        def record() -> None:
            ticket.abandon()
            if not done["recorded"]:
                done["recorded"] = True
                self.metrics.request_done(int(done["status"]), time.perf_counter() - start)

        async def events() -> AsyncIterator[bytes]:
            rid = S.new_id("chatcmpl" if chat else "cmpl")
            created, model = S.now(), self.model_name
            opts = req.stream_options
            include_usage = None if opts is None else opts.include_usage
            produced = 0
            try:
                async with ticket:
                    if chat:
                        role = {"role": "assistant", "content": ""}
                        yield sse(S.chat_chunk(rid, model, created, role))
                    elif isinstance(req, S.CompletionRequest) and req.echo:
                        yield sse(S.completion_chunk(rid, model, created, prompt.text))
                    async for chunk in self._tokens(prompt, params, start):
                        produced += chunk.tokens
                        if not chunk.text and chunk.finish_reason is None:
                            continue
                        usage = None
                        if chunk.finish_reason is not None and include_usage is None:
                            usage = S.usage(len(prompt.token_ids), produced)
                        if chat:
                            delta = {"content": chunk.text} if chunk.text else {}
                            payload = S.chat_chunk(
                                rid, model, created, delta, chunk.finish_reason, usage
                            )
                        else:
                            payload = S.completion_chunk(
                                rid, model, created, chunk.text, chunk.finish_reason, usage
                            )
                        yield sse(payload)
                if include_usage:
                    usage = S.usage(len(prompt.token_ids), produced)
                    maker = S.chat_chunk if chat else S.completion_chunk
                    yield sse(maker(rid, model, created, None, None, usage))
                yield DONE
                done["status"] = 200
            except EngineError as exc:
                done["status"] = 500
                yield sse(APIError(500, str(exc), type_="server_error").body())
                yield DONE

        return GuardedStreamingResponse(events(), on_close=record)


async def _read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, "Request body too large.", code="body_too_large")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"Malformed JSON body: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def _validate(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc


def _message(message: S.ChatMessage) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role, "content": message.text()}
    if message.name:
        out["name"] = message.name
    return out


def _unavailable(message: str) -> APIError:
    return APIError(
        503, f"Model not loaded: {message}", code="model_not_loaded", type_="service_unavailable"
    )
