"""Ray Serve hosting: one deployment whose FastAPI ingress mounts the OpenAI API.

KubeRay RayService `serveConfigV2`::

    applications:
      - name: wattserve
        route_prefix: /
        import_path: wattserve_serving.ray_app:app        # config from WATTSERVE_* env
        # or: import_path: wattserve_serving.ray_app:build_app, with `args:` below
        args: {model: /models/m.gguf, engine: llamacpp, max_queue: "16"}

Single-node per pod (the Deployment backend) runs the same thing via
`wattserve-serve --server ray`.
"""

# No `from __future__ import annotations`: FastAPI must see the real `Request` class on
# the ingress methods after Ray rewrites their signatures.
from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.serve import Application
from starlette.exceptions import HTTPException
from starlette.responses import Response

from wattserve import contract
from wattserve_serving.app import http_error
from wattserve_serving.config import ServeConfig
from wattserve_serving.engines import make_engine
from wattserve_serving.model_files import resolve_model
from wattserve_serving.openai_api import ServingAPI

DEPLOYMENT_NAME = "wattserve"
# Health and metrics scrapes must get through even with a full generation queue.
CONTROL_REQUEST_HEADROOM = 8

_ARG_FIELDS: dict[str, type] = {
    "model": str,
    "model_name": str,
    "engine": str,
    "task": str,
    "threads": int,
    "max_queue": int,
    "context_length": int,
    "gpu_count": int,
    "pool": str,
    "namespace": str,
    "model_deployment": str,
}


def config_from_args(args: dict[str, Any]) -> ServeConfig:
    """WATTSERVE_* env first, then `args` (serveConfigV2 `args:` or the CLI) on top."""
    cfg = ServeConfig.from_env()
    for key, value in args.items():
        kind = _ARG_FIELDS.get(key)
        if kind is None:
            raise ValueError(f"unknown wattserve app arg {key!r}")
        setattr(cfg, key, kind(value))
    cfg.model = resolve_model(cfg.model)
    return cfg


# Everything the deployment class uses is defined above it: Ray serializes the class
# when it is decorated.
ingress = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
ingress.add_exception_handler(HTTPException, http_error)
ingress.router.redirect_slashes = False  # a trailing slash: a JSON 404, not an empty 307


@serve.deployment(name=DEPLOYMENT_NAME, health_check_period_s=10, health_check_timeout_s=30)
@serve.ingress(ingress)
class WattserveDeployment:
    """One replica: loads the model in its constructor, so Ray only routes when ready."""

    async def __init__(self, config: dict[str, Any] | None = None) -> None:  # type: ignore[misc]
        cfg = config_from_args(config or {})
        self.api = ServingAPI(cfg, make_engine(cfg))
        await self.api.start(wait_for_model=True)
        if not self.api.engine.ready():
            raise RuntimeError(f"model load failed: {self.api.load_error}")

    async def check_health(self) -> None:
        if not self.api.engine.ready():
            raise RuntimeError("model not loaded")

    async def drain(self, timeout_s: float) -> int:
        """SIGTERM on the single-node server (`wattserve-serve --server ray`): new and queued
        requests get the retryable 503, running ones finish (at most `timeout_s`)."""
        return await self.api.drain(timeout_s)

    @ingress.get("/v1/models")
    async def models(self, request: Request) -> Response:
        return await self.api.models(request)

    @ingress.get("/v1/models/{model:path}")
    async def model(self, request: Request) -> Response:
        return await self.api.model(request)

    @ingress.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self.api.chat_completions(request)

    @ingress.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self.api.completions(request)

    @ingress.post("/v1/embeddings")
    async def embeddings(self, request: Request) -> Response:
        return await self.api.embeddings(request)

    @ingress.post("/v1/responses")
    async def responses(self, request: Request) -> Response:
        return await self.api.responses(request)

    @ingress.get(contract.HEALTH_PATH)
    async def health(self, request: Request) -> Response:
        return await self.api.health(request)

    @ingress.get(contract.METRICS_PATH)
    async def metrics(self, request: Request) -> Response:
        return await self.api.metrics_endpoint(request)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Ray Serve application builder (also the CLI's `--server ray` path)."""
    args = dict(args or {})
    cfg = config_from_args(args)
    slots = 1 if cfg.engine == "llamacpp" else 256
    options: dict[str, Any] = {
        "max_ongoing_requests": slots + cfg.max_queue + CONTROL_REQUEST_HEADROOM,
        # A replica Ray stops (scale-down, a new serveConfigV2) finishes what it runs within
        # the same budget as the uvicorn server's drain (Ray's default, stated on purpose).
        "graceful_shutdown_timeout_s": contract.SERVING_DRAIN_SECONDS,
        # llama.cpp threads are sized from the pod's CPU limit, not Ray's logical CPUs.
        "ray_actor_options": {"num_cpus": 0, "num_gpus": _replica_gpus(cfg)},
    }
    app: Application = WattserveDeployment.options(**options).bind(args)  # type: ignore[attr-defined]
    return app


def _replica_gpus(cfg: ServeConfig) -> float:
    # vLLM with tensor parallelism > 1 places its own GPU workers (Ray placement group).
    return 1.0 if cfg.engine == "vllm" and cfg.gpu_count == 1 else 0.0


app = build_app()
