"""Server-sent events in the OpenAI wire format, with guaranteed cleanup on disconnect."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class GuardedStreamingResponse(StreamingResponse):
    """A StreamingResponse that always closes its iterator and runs `on_close`.

    Starlette cancels the streaming task when the client disconnects; closing the
    iterator here makes the generator's `finally` (which cancels generation) run
    immediately, and `on_close` releases anything the generator never got to use.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._iterator = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                aclose = getattr(self._iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                self._on_close()
