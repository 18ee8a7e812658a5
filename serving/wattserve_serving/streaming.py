"""Server-sent events in the OpenAI wire format, with guaranteed cleanup on disconnect."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("wattserve_serving")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"
# A client that stops reading (its socket buffers full) for this long is treated as gone:
# its stream is closed and generation stops, so it cannot hold an engine slot for good.
STALL_TIMEOUT_S = 60.0


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class ClientStalled(Exception):
    """The client stopped reading: a write did not complete within STALL_TIMEOUT_S."""


class GuardedStreamingResponse(StreamingResponse):
    """A StreamingResponse that always closes its iterator and runs `on_close`.

    Starlette cancels the streaming task when the client disconnects; closing the
    iterator here makes the generator's `finally` (which cancels generation) run
    immediately, and `on_close` releases anything the generator never got to use. A
    client that reads nothing for STALL_TIMEOUT_S (one write blocked that long) is
    treated the same way (499): one connection cannot hold an engine slot for good.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._iterator = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stall_s = STALL_TIMEOUT_S

        async def bounded_send(message: Message) -> None:
            try:
                await asyncio.wait_for(send(message), stall_s)
            except TimeoutError:
                raise ClientStalled from None

        try:
            await super().__call__(scope, receive, bounded_send)
        except ClientStalled:
            log.info("a streaming client read nothing for %.0f s: stream closed", stall_s)
        finally:
            try:
                aclose = getattr(self._iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                self._on_close()
