"""The ASGI app for running without Ray (uvicorn), built around one `ServingAPI`.

A plain Starlette app: the routes are Starlette routes either way, and FastAPI (which Ray
Serve's ingress needs, `ray_app.py`) adds ~0.3 s of imports to every cold start (its
OpenAPI models), time a replica woken from zero keeps its held requests waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from wattserve import contract
from wattserve_serving.config import ServeConfig
from wattserve_serving.engines import Engine, make_engine
from wattserve_serving.errors import APIError
from wattserve_serving.openai_api import ServingAPI
from wattserve_serving.request_id import RequestId


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, in the OpenAI error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}  # 405: Allow
    return APIError(status, f"{detail}: {request.method} {request.url.path}",
                    headers=headers).response()


def mount(app: Starlette, api: ServingAPI) -> None:
    """Plain Starlette routes (no FastAPI dependency injection on the hot path)."""
    app.add_route("/v1/models", api.models, methods=["GET"])
    app.add_route("/v1/models/{model:path}", api.model, methods=["GET"])
    app.add_route("/v1/chat/completions", api.chat_completions, methods=["POST"])
    app.add_route("/v1/completions", api.completions, methods=["POST"])
    app.add_route("/v1/embeddings", api.embeddings, methods=["POST"])
    app.add_route("/v1/responses", api.responses, methods=["POST"])
    app.add_route(contract.HEALTH_PATH, api.health, methods=["GET"])
    app.add_route(contract.METRICS_PATH, api.metrics_endpoint, methods=["GET"])


def create_app(
    config: ServeConfig, engine: Engine | None = None, wait_for_model: bool = False,
    keys: tuple[str, ...] | None = None,
) -> Starlette:
    """An ASGI app whose lifespan loads the model (in the background by default); ``keys``:
    the API keys already read (else `ServingAPI` reads them)."""
    api = ServingAPI(config, engine if engine is not None else make_engine(config), keys)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await api.start(wait_for_model=wait_for_model)
        try:
            yield
        finally:
            await api.stop()

    app = Starlette(lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.router.redirect_slashes = False  # "/v1/completions/": a JSON 404, not an empty 307
    app.state.api = api
    app.add_middleware(RequestId)  # Ray Serve's proxy sets its own (ray_app.py)
    mount(app, api)
    return app
