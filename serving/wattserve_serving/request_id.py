"""``x-request-id`` on every answer, as OpenAI sends it: clients report it with their errors
(openai-python's ``_request_id``, openai-node's ``requestID``), so a failure a user sees can
be found in the server's log. The caller's own id is kept when it sent a sane one (a
gateway's), else a new one is made."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


def request_id(scope: Scope) -> str:
    """The request's id: its own ``X-Request-Id`` when sane, else ``req_<32 hex>``."""
    for name, value in scope.get("headers") or ():
        if name.lower() == HEADER and isinstance(value, bytes) and _SANE.fullmatch(value):
            return value.decode("ascii")
    return f"req_{uuid.uuid4().hex}"


class RequestId:
    """ASGI middleware: the id in the scope's ``state`` and on the response's headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode())]}
            await send(message)

        await self.app(scope, receive, stamped)
