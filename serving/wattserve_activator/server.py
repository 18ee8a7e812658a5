"""The activator's HTTP side (aiohttp): which model a request is for, hold, forward, or 503.

Which model: the ``X-Wattserve-Model-Deployment: <namespace>/<service>`` header, else the
Host header of a cluster DNS name (``<service>.<namespace>[.svc[.cluster.local]]``). A
request naming no model gets 400. Forwarding streams the response through chunk by chunk
(server-sent events pass as they come); the request body is read first (a JSON document).
Errors are OpenAI-style JSON: ``{"error": {"message", "type", "code"}}``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from typing import Final

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from wattserve import contract
from wattserve_activator.discovery import Discovery
from wattserve_activator.holding import Holding, Metrics, Rejected, Settings

logger = logging.getLogger(__name__)
HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "proxy-authenticate",
                               "proxy-authorization", "te", "trailers", "transfer-encoding",
                               "upgrade", "host", "content-length"})
MAX_BODY: Final = 8 * 1024 * 1024  # what a serving replica accepts at most
# The bodies of all held requests together (the pod's memory limit is 256 Mi): beyond it a
# request is refused at once (503, retryable) instead of the activator being OOM-killed
# with every held request of every model.
HELD_BYTES_BUDGET: Final = 64 * 1024 * 1024
DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def make_runner(app: web.Application) -> web.AppRunner:
    """A runner that cancels a handler when its client goes away (aiohttp's default since
    3.9 is not to): a held request whose client left frees its queue slot at once."""
    return web.AppRunner(app, access_log=None, handler_cancellation=True)


def error_response(status: int, message: str, code: str, retry_after: int | None = None,
                   ) -> web.Response:
    kind = "service_unavailable" if status == 503 else "invalid_request_error"
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": {"message": message, "type": kind, "code": code}},
                             status=status, headers=headers)


def model_of(request: web.Request) -> tuple[str, str] | None:
    """(namespace, Service) the request is for, from the header or the Host; both must be
    DNS labels: they go into API server paths (``ns/svc?watch=1``, ``../..`` must not)."""
    found = _named_model(request)
    if found is None or not all(DNS_LABEL.fullmatch(part) for part in found):
        return None
    return found


def _named_model(request: web.Request) -> tuple[str, str] | None:
    explicit = request.headers.get(contract.HEADER_MODEL_DEPLOYMENT, "").strip()
    if explicit:
        ns, _, svc = explicit.partition("/")
        return (ns, svc) if ns and svc and "/" not in svc else None
    host = (request.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) < 2 or (len(parts) > 2 and parts[2] != "svc"):
        return None
    return parts[1], parts[0]


class Activator:
    def __init__(self, discovery: Discovery, settings: Settings | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings or Settings()
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.holding = Holding(discovery, self.settings, self.metrics)
        self.discovery = discovery
        self._session: aiohttp.ClientSession | None = None
        self.cancelled = 0  # held requests whose client went away (counted, logged)
        self.held_bytes = 0  # the bodies of the requests in hand, all models together

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.discovery.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_cleanup.append(lambda _: self.close())
        return app

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get(contract.METRICS_PATH, self.metrics_endpoint)
        return app

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics_endpoint(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        deadline = started + self.settings.deadline_s
        model = model_of(request)
        if model is None:
            return error_response(400, "the activator cannot tell which model this request is "
                                  f"for: call the model's Service by its cluster DNS name "
                                  f"(<service>.<namespace>) or set "
                                  f"{contract.HEADER_MODEL_DEPLOYMENT}: <namespace>/<service>",
                                  "unknown_model")
        declared = request.content_length or 0
        if self.held_bytes + declared > HELD_BYTES_BUDGET:
            return self._over_budget(model)
        body = await request.read()
        if self.held_bytes + len(body) > HELD_BYTES_BUDGET:
            return self._over_budget(model)
        self.held_bytes += len(body)
        try:
            return await self._hold_and_forward(request, body, model, started, deadline)
        finally:
            self.held_bytes -= len(body)

    def _over_budget(self, model: tuple[str, str]) -> web.Response:
        self.metrics.rejected.labels(*model, "memory").inc()
        return error_response(503, f"the activator holds {self.held_bytes} bytes of request "
                              "bodies already (its budget for all models); retry later",
                              "activator_full", self.settings.retry_after_s)

    async def _hold_and_forward(self, request: web.Request, body: bytes,
                                model: tuple[str, str], started: float,
                                deadline: float) -> web.StreamResponse:
        gate = self.holding.gate(*model)
        try:
            for attempt in range(2):
                try:
                    endpoint, held = await self.holding.wait_ready(gate, deadline)
                except Rejected as rej:
                    logger.info("%d %s/%s: %s", rej.status, *model, rej.message)
                    return error_response(rej.status, rej.message, rej.reason,
                                          self.settings.retry_after_s
                                          if rej.status == 503 else None)
                try:
                    return await self.forward(request, body, endpoint, held)
                except (aiohttp.ClientConnectionError, TimeoutError) as err:
                    # Not started streaming yet: the replica went away. Ask again once.
                    self.holding.forget_endpoints(gate)
                    if attempt == 1 or time.monotonic() >= deadline:
                        self.metrics.rejected.labels(*model, "upstream").inc()
                        return error_response(
                            503, f"cannot reach a replica of {model[0]}/{model[1]} at "
                                 f"{endpoint} ({type(err).__name__}: {err}); retry later",
                            "upstream_unreachable", self.settings.retry_after_s)
            raise AssertionError("unreachable")
        except asyncio.CancelledError:
            self.cancelled += 1
            logger.info("client of %s/%s went away after %.2fs", *model,
                        time.monotonic() - started)
            raise

    async def forward(self, request: web.Request, body: bytes, endpoint: str,
                      held: float) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        session = await self.session()
        async with session.request(request.method, endpoint + request.path_qs,
                                   headers=headers, data=body or None) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            response.headers[contract.HEADER_ACTIVATED] = f"{held:.3f}"
            if upstream.headers.get("Content-Length") and "Content-Encoding" not in (
                    upstream.headers):
                response.content_length = int(upstream.headers["Content-Length"])
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, TimeoutError) as err:
                # The replica failed mid-response: what it sent is the client's; the request
                # must not be forwarded again (it has run), and the client must see the cut.
                logger.warning("replica %s failed mid-response (%s: %s): closing the "
                               "client's connection", endpoint, type(err).__name__, err)
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
            return response
