"""``POST /v1/embeddings``: OpenAI's request and response, for engines that embed.

Input is a text, a list of texts, a list of token ids or a list of such lists (OpenAI's
four forms), at most :data:`MAX_INPUTS` of them, each non-empty and within the model's
context. ``encoding_format`` is ``float`` (lists of numbers) or ``base64`` (little-endian
float32 bytes; what the ``openai`` Python client asks for by default). ``dimensions`` is
accepted only as the model's own size: shortening a vector is sound only for models trained
for it (Matryoshka), which this server cannot tell, so it refuses rather than truncates.
"""

from __future__ import annotations

import base64
import logging
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wattserve_serving.admission import Ticket
from wattserve_serving.engines.base import EngineError, EngineNotReady
from wattserve_serving.errors import APIError, unavailable, validate
from wattserve_serving.prompts import check_vocabulary
from wattserve_serving.request_body import ClientGone, body_limit, off_loop, read_json
from wattserve_serving.responses import CLIENT_CLOSED
from wattserve_serving.schemas import _Strict, texts_or_ids

if TYPE_CHECKING:
    from wattserve_serving.openai_api import ServingAPI

log = logging.getLogger("wattserve_serving")

MAX_INPUTS = 2048  # OpenAI's bound on inputs per request


@runtime_checkable
class Embedder(Protocol):
    """An engine that embeds (``spec.model.task: embedding``)."""

    dimensions: int
    context_length: int

    async def tokenize(self, text: str, add_bos: bool = True) -> list[int]: ...

    def vocab_size(self) -> int: ...

    async def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]: ...


class EmbeddingRequest(_Strict):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def inputs(self) -> list[str | list[int]]:
        return texts_or_ids(self.input)


async def token_inputs(engine: Embedder, req: EmbeddingRequest) -> list[list[int]]:
    """Each input as token ids, checked: non-empty, in the vocabulary, within the context."""
    items = req.inputs()
    if not items:
        raise APIError(400, "Invalid 'input': must not be empty.", param="input")
    if len(items) > MAX_INPUTS:
        raise APIError(400, f"Invalid 'input': at most {MAX_INPUTS} inputs per request, got "
                       f"{len(items)}.", param="input")
    if req.dimensions is not None and req.dimensions != engine.dimensions:
        raise APIError(400, f"Invalid 'dimensions': this model's embeddings have "
                       f"{engine.dimensions} dimensions and it is not known to support "
                       "shortened ones; omit 'dimensions'.", param="dimensions",
                       code="unsupported_parameter")
    out: list[list[int]] = []
    for index, item in enumerate(items):
        where = "input" if len(items) == 1 else f"input.{index}"
        if isinstance(item, str):  # the body limit (request_body) bounds the text
            ids = await engine.tokenize(item, add_bos=True) if item else []
        else:
            ids = list(item)
            check_vocabulary(engine, ids, where)
        if not ids:
            raise APIError(400, f"Invalid '{where}': must not be empty.", param=where)
        if len(ids) > engine.context_length:
            raise _too_long(where, engine.context_length, len(ids))
        out.append(ids)
    return out


def _too_long(where: str, context: int, tokens: int) -> APIError:
    return APIError(400, f"Invalid '{where}': {tokens} tokens, longer than this model's "
                    f"context of {context} tokens.", param=where,
                    code="context_length_exceeded")


def response(model: str, vectors: list[list[float]], tokens: int,
             encoding: str) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": _encode(v, encoding)}
            for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


async def serve(api: ServingAPI, request: Request) -> Response:
    """The handler: the same key check, admission gate and metrics as generation."""
    start = time.perf_counter()
    status = 500
    ticket: Ticket | None = None
    try:
        api.keys.check(request)
        engine = api.engine
        if not isinstance(engine, Embedder):
            raise APIError(400, f"The model '{api.model_name}' generates text; embeddings need "
                           "a ModelDeployment with spec.model.task: embedding.",
                           param="model", code="model_not_supported")
        body = await read_json(request, body_limit(engine.context_length))
        req = await off_loop(validate, EmbeddingRequest, body)
        api.check_model(req.model)
        api.check_ready()
        ticket = api.reserve()
        inputs = await token_inputs(engine, req)
        tokens = sum(len(ids) for ids in inputs)
        async with ticket:
            try:
                vectors = await engine.embed(inputs)
            except EngineError as exc:
                log.error("embedding failed: %s", exc)
                raise APIError(500, "embedding failed", type_="server_error") from exc
        api.metrics.prompt_tokens.inc(tokens)
        status = 200
        return JSONResponse(response(api.model_name, vectors, tokens, req.encoding_format))
    except APIError as exc:
        status = exc.status
        return exc.response()
    except EngineNotReady as exc:
        status = 503
        return unavailable(str(exc)).response()
    except ClientGone:  # left mid-upload: not a server error (generation counts it alike)
        status = CLIENT_CLOSED
        return Response(status_code=400)  # nobody reads it
    except Exception:
        log.exception("request failed")
        return APIError(500, "internal error", type_="server_error").response()
    finally:
        if ticket is not None:
            ticket.abandon()
        api.metrics.request_done(status, time.perf_counter() - start)
