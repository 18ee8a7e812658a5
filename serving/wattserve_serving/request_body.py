"""Reading a request body safely: JSON only, size-limited while it streams in, time-limited.

Everything here runs before the request is validated, so each step is bounded by the
body size (checked from Content-Length before reading, and again while reading), and
each failure is an OpenAI-style 4xx without exception text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request

from wattserve_serving.errors import APIError

MAX_BODY_BYTES = 8 * 1024 * 1024  # the ceiling; the app derives a smaller one from context
MIN_BODY_BYTES = 1024 * 1024
BODY_BYTES_PER_TOKEN = 192  # 32 characters per token x 6 bytes (a JSON \uXXXX escape)
BODY_TIMEOUT_S = 30.0  # a whole body must arrive within this (slow-body clients)
JSON_TYPES = ("application/json",)  # forces a CORS preflight, which this server refuses
# All bodies being read at once, together (a process-wide budget: 512 connections x 8 MiB
# would be 4 GiB); beyond it a request gets 429 and Retry-After.
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
# CPU-heavy steps on whole bodies (JSON parsing, validation) run on worker threads, at most
# this many at once, so the event loop and its probes keep their share of the GIL.
_PARSE_SLOTS = threading.BoundedSemaphore(2)
_buffered = {"bytes": 0}
T = TypeVar("T")
R = TypeVar("R")


def body_limit(context_length: int) -> int:
    """Largest body worth reading for a model with this context (JSON parsing and
    validation hold the GIL, so their cost is bounded by the body size)."""
    return min(MAX_BODY_BYTES, max(MIN_BODY_BYTES, context_length * BODY_BYTES_PER_TOKEN))


class ClientGone(Exception):
    """The client closed the connection before the body arrived (status 499, no log)."""


def check_content_type(request: Request) -> None:
    """Only JSON: a browser cannot send it cross-origin without a preflight (refused here)."""
    raw = request.headers.get("content-type", "")
    media = raw.split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES:
        raise APIError(
            415,
            "Unsupported 'Content-Type': send the body as 'application/json'.",
            code="unsupported_media_type",
        )


async def read_json(
    request: Request, limit: int = MAX_BODY_BYTES, timeout_s: float | None = None
) -> dict[str, Any]:
    """The body as a JSON object, or an APIError (413, 408, 400) / ClientGone."""
    timeout_s = BODY_TIMEOUT_S if timeout_s is None else timeout_s
    check_content_type(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise APIError(400, "Invalid 'Content-Length' header.", code="invalid_header") from None
        if size > limit:
            raise _too_large(limit)
    held = [0]
    try:
        async with asyncio.timeout(timeout_s):
            raw = await _read_limited(request, limit, held)
        return await off_loop(parse_json, raw)  # up to `limit` bytes: off the loop
    except TimeoutError:
        raise APIError(
            408, f"The request body did not arrive within {timeout_s:g} s.", code="timeout"
        ) from None
    except ClientDisconnect:
        raise ClientGone from None
    finally:
        _buffered["bytes"] -= held[0]


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a worker thread, at most two at once (CPU-heavy body work)."""

    def run() -> T:
        with _PARSE_SLOTS:
            return fn(*args)

    return await asyncio.to_thread(run)


async def _read_limited(request: Request, limit: int, held: list[int]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        _buffered["bytes"] += len(chunk)
        held[0] += len(chunk)
        if _buffered["bytes"] > MAX_BUFFERED_BYTES:
            raise APIError(
                429, "Too many large requests at once: retry later.", code="server_busy",
                type_="rate_limit_error", headers={"Retry-After": "1"},
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    """A JSON object whose strings are valid Unicode and whose nesting is shallow."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise APIError(400, "Malformed JSON body: not valid UTF-8.", code="invalid_json") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise APIError(400, f"Malformed JSON body: {exc.msg}.", code="invalid_json") from None
    except RecursionError:
        raise APIError(400, "Malformed JSON body: too deeply nested.",
                       code="invalid_json") from None
    except ValueError:  # int("9" * 5000): Python converts at most 4300 digits
        raise APIError(400, f"Malformed JSON body: a number has more than "
                       f"{sys.get_int_max_str_digits()} digits.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    bad = _bad_text(body)
    if bad is not None:
        raise APIError(
            400,
            f"Invalid value for '{bad}': the string is not valid Unicode (lone surrogate).",
            param=bad,
            code="invalid_value",
        )
    return body


def _bad_text(body: dict[str, Any]) -> str | None:
    """The dotted path of the first string (or key) that cannot be encoded as UTF-8."""
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                stack.append((where, item))
                stack.append((path or "body", key))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(value))
    return None


def _too_large(limit: int) -> APIError:
    return APIError(
        413, f"Request body too large: the limit is {limit} bytes.", code="body_too_large"
    )


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, R]) -> R:
    """Run `work`; cancel it (and its generation) when the client disconnects first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientGone
    finally:
        watch.cancel()
        task.cancel()


async def _disconnected(request: Request) -> None:
    """Returns when the ASGI server reports that the client went away."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return
        await asyncio.sleep(0.05)  # a server that answers at once must not spin the loop
