"""The OpenAI-compatible request handlers, independent of the hosting server.

`ServingAPI` owns the engine, metrics, admission gate and energy meter; `app.py` mounts
its handlers on a FastAPI app for uvicorn, `ray_app.py` on a Ray Serve ingress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wattserve_serving import embeddings, responses_answer, responses_api
from wattserve_serving import schemas as S
from wattserve_serving.admission import AdmissionGate, QueueFull, Ticket
from wattserve_serving.auth import APIKeys, load_keys
from wattserve_serving.config import SERVER_IMPORTED_AT, ServeConfig, pod_cpus, process_age_s
from wattserve_serving.energy import EnergyMeter, select_source
from wattserve_serving.engines.base import (
    Chunk,
    Engine,
    EngineNotReady,
    LoadsEarly,
    PreparedPrompt,
    SamplingParams,
    Unsupported,
)
from wattserve_serving.errors import APIError, shutting_down, unavailable, validate
from wattserve_serving.metrics import ServingMetrics
from wattserve_serving.prompts import (
    check_content_parts,
    check_logprobs,
    check_max_tokens,
    check_message_count,
    check_messages,
    check_response_format,
    check_schema_bounds,
    check_size,
    check_tools,
    prepare,
    sampling,
)
from wattserve_serving.request_body import (
    ClientGone,
    body_limit,
    off_loop,
    read_json,
    unless_client_leaves,
)
from wattserve_serving.responses import CLIENT_CLOSED, Admitted, complete, stream

log = logging.getLogger("wattserve_serving")
RETRY_AFTER_S = 1


class ServingAPI:
    def __init__(
        self, config: ServeConfig, engine: Engine, keys: tuple[str, ...] | None = None
    ) -> None:
        self.config = config
        self.keys = APIKeys(load_keys() if keys is None else keys)
        self.engine = engine
        self.model_name = config.served_model_name
        self.metrics = ServingMetrics(config.labels())
        self.gate = AdmissionGate(engine.max_concurrency, config.max_queue, self.metrics.set_load,
                                  refusal=shutting_down)
        self.energy: EnergyMeter | None = None
        self.load_error: str | None = None
        self.created = S.now()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._energy_failing = False

    # -- lifecycle ---------------------------------------------------------------
    async def start(self, wait_for_model: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self.energy = EnergyMeter(select_source(pod_cpus()), self.metrics.add_energy)
        self._tasks.append(asyncio.create_task(self._energy_loop()))
        if wait_for_model:
            await self._load()
        else:
            self._tasks.append(asyncio.create_task(self._load()))

    async def _load(self) -> None:
        try:
            began = time.perf_counter()
            if isinstance(self.engine, LoadsEarly) and self.engine.load_began is not None:
                began = self.engine.load_began  # begun before the app (cli.py)
            await self.engine.load()
            # The cold-start breakdown (docs/benchmarks-activator.md) reads this line.
            took, age = time.perf_counter() - began, process_age_s()
            log.info("model %s loaded (%s) in %.3fs; process up %.3fs", self.model_name,
                     self.engine.engine_name, took, age)
            imported = self.config.extra.get(SERVER_IMPORTED_AT)
            if imported is not None:
                log.info("server imported at process up %ss; the model began loading at "
                         "process up %.3fs", imported, age - took)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("model load failed: %s", self.load_error)

    async def _energy_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.energy_interval_s)
            self._sample_energy()

    def _sample_energy(self) -> None:
        """One energy reading; a failed one (an NVML or RAPL hiccup) is logged and skipped:
        it must neither stop the sampler for good nor fail the scrape of the latency and
        queue series the autoscaler reads."""
        if self.energy is None:
            return
        try:
            self.energy.sample()
        except Exception as exc:
            self.metrics.energy_read_errors.inc()
            if not self._energy_failing:  # once per run of failures, not every interval
                log.warning("energy reading failed (skipped until it works again): %s: %s",
                            type(exc).__name__, exc)
            self._energy_failing = True
        else:
            self._energy_failing = False

    def begin_drain(self) -> None:
        """SIGTERM: running requests finish, queued and new ones get a retryable 503."""
        if self._loop is not None and not self.gate.draining:
            log.info("shutting down: %d running requests finish, %d queued get 503",
                     self.gate.running, self.gate.queued)
            self._loop.call_soon_threadsafe(self.gate.drain)

    async def drain(self, timeout_s: float) -> int:
        """The drain where no server handles the signal (Ray Serve): begin it, then wait up
        to `timeout_s` for the running requests; returns how many were still running."""
        self.begin_drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (self.gate.running or self.gate.queued) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return self.gate.running

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
        self._sample_energy()
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def models(self, request: Request) -> Response:
        try:
            self.keys.check(request)
        except APIError as exc:
            return exc.response()
        return JSONResponse(S.models_list(self.model_name, self.created))

    async def model(self, request: Request) -> Response:
        """``GET /v1/models/{model}``: the served model, or 404 for any other id."""
        try:
            self.keys.check(request)
            self.check_model(str(request.path_params.get("model", "")))
        except APIError as exc:
            return exc.response()
        return JSONResponse(S.models_list(self.model_name, self.created)["data"][0])

    # -- generation endpoints ----------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        return await self._handle(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._handle(request, chat=False)

    async def embeddings(self, request: Request) -> Response:
        return await embeddings.serve(self, request)

    async def responses(self, request: Request) -> Response:
        """``POST /v1/responses``: generated as a chat completion (`responses_api`)."""
        return await self._handle(request, chat=True, responses=True)

    async def _handle(self, request: Request, chat: bool, responses: bool = False) -> Response:
        start = time.perf_counter()
        status = 500
        streaming = False
        ticket: Ticket | None = None
        asked: responses_api.ResponsesRequest | None = None
        try:
            self.keys.check(request)
            if isinstance(self.engine, embeddings.Embedder):
                raise APIError(400, f"The model '{self.model_name}' serves embeddings; use "
                               "/v1/embeddings.", param="model", code="model_not_supported")
            body = await read_json(request, body_limit(self.engine.context_length))
            if responses:
                asked = await off_loop(responses_api.read, body)
                body = responses_api.to_chat(asked)
            check_message_count(body, self.engine.context_length)  # before validating them
            check_content_parts(body)
            unsupported = S.unsupported_param(body, chat)
            if unsupported is not None:
                raise APIError(
                    400,
                    f"'{unsupported}' is not supported by this server; remove it.",
                    param=unsupported,
                    code="unsupported_parameter",
                )
            req: S.ChatCompletionRequest | S.CompletionRequest
            if chat:
                req = await off_loop(validate, S.ChatCompletionRequest, body)
            else:
                req = await off_loop(validate, S.CompletionRequest, body)
            self.check_model(req.model)
            self.check_ready()
            check_messages(req)
            check_size(self.engine, req)
            check_max_tokens(req)
            check_logprobs(self.engine, req)
            check_tools(req)
            check_schema_bounds(req)
            ticket = self.reserve()  # admission before any tokenizing
            prompts, param = await prepare(self.engine, req)
            work = [(p, sampling(self.engine, req, len(p.token_ids), param)) for p in prompts]
            await check_response_format(self.engine, work[0][1], req)
            if req.stream:
                streaming = True  # the stream records its own status when it ends
                handed, ticket = ticket, None
                admitted = Admitted(req, chat, work, handed, start)
                if asked is not None:
                    return responses_answer.stream(self, admitted, asked)
                return stream(self, admitted)
            admitted = Admitted(req, chat, work, ticket, start)
            answer = (complete(self, admitted) if asked is None
                      else responses_answer.complete(self, admitted, asked))
            response = await unless_client_leaves(request, answer)
            status = 200
            return response
        except APIError as exc:
            status = exc.status
            if asked is not None:
                exc = responses_api.rename(exc, asked)
            return exc.response()
        except ClientGone:
            status = CLIENT_CLOSED
            return Response(status_code=400)  # nobody reads it
        except EngineNotReady as exc:
            status = 503
            return unavailable(str(exc)).response()
        except Unsupported as exc:
            status = 400
            return APIError(400, str(exc), param="model", code="model_not_supported").response()
        except Exception:
            log.exception("request failed (x-request-id %s)",
                          request.scope.get("state", {}).get("request_id"))
            status = 500
            return APIError(500, "internal error", type_="server_error").response()
        finally:
            if ticket is not None:
                ticket.abandon()
            if not streaming:
                self.metrics.request_done(status, time.perf_counter() - start)

    def reserve(self) -> Ticket:
        try:
            return self.gate.reserve()
        except QueueFull:
            raise APIError(
                429,
                "Too many requests: the server queue is full, retry later.",
                code="queue_full",
                type_="rate_limit_error",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None

    def check_model(self, model: str) -> None:
        if model not in (self.model_name, self.config.model):
            raise APIError(
                404,
                f"The model '{model}' does not exist; this server serves '{self.model_name}'.",
                param="model",
                code="model_not_found",
            )

    def check_ready(self) -> None:
        if not self.engine.ready():
            raise unavailable(self.load_error or "model is still loading")

    async def tokens(
        self, prompt: PreparedPrompt, params: SamplingParams, start: float, index: int, n: int
    ) -> AsyncIterator[Chunk]:
        """Engine chunks of choice ``index`` (``n`` per prompt), with token counters, TTFT and
        inter-token latency recorded: a prompt counts once (with its first choice), the time
        to first token once per request (with choice 0)."""
        first = index == 0
        if index % n == 0:
            self.metrics.prompt_tokens.inc(len(prompt.token_ids))
        last: float | None = None
        stream = self.engine.generate(prompt, params)
        try:
            async for chunk in stream:
                if chunk.tokens:
                    now = time.perf_counter()
                    self.metrics.generation_tokens.inc(chunk.tokens)
                    if last is None:
                        if first:
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
