"""Bounded admission: `slots` requests run, up to `max_queue` wait, the rest get 429.

`reserve()` is synchronous so the 429 decision is made before any response starts;
the returned ticket waits for a running slot in `async with ticket:`. `abandon()` frees
a reservation that never ran (e.g. a stream whose client left before it started).

`drain()` (SIGTERM: the pod is going away) lets the running requests finish and turns the
queued ones and every new one away (`refusal`, `Draining` by default; the server's is a
retryable 503), so
a client retries on another replica at once instead of being cut off when the grace
period ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType


class QueueFull(Exception):
    """More requests than running slots plus the bounded queue."""


class Draining(Exception):
    """The server is shutting down: no new work starts here."""


class Ticket:
    def __init__(self, gate: AdmissionGate) -> None:
        self._gate = gate
        self._state = "queued"  # queued -> running -> done

    async def __aenter__(self) -> Ticket:
        try:
            await self._gate._acquire()
        except BaseException:
            self.abandon()
            raise
        self._state = "running"
        self._gate._move(queued=-1, running=+1)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "running":
            self._state = "done"
            self._gate._sem.release()
            self._gate._move(running=-1)

    def abandon(self) -> None:
        """Drop a reservation that never got a slot (idempotent)."""
        if self._state == "queued":
            self._state = "done"
            self._gate._move(queued=-1)


class AdmissionGate:
    """Counts running and queued requests; calls `on_change(running, queued)` on changes."""

    def __init__(
        self,
        slots: int,
        max_queue: int,
        on_change: Callable[[int, int], None] | None = None,
        refusal: Callable[[], Exception] = Draining,
    ) -> None:
        self.slots = max(1, slots)
        self.max_queue = max(0, max_queue)
        self._sem = asyncio.Semaphore(self.slots)
        self.running = 0
        self.queued = 0
        self._on_change = on_change
        self._draining = asyncio.Event()
        self._refusal = refusal  # what draining raises (the server's retryable 503)

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def drain(self) -> None:
        """Refuse new and queued requests from now on (idempotent)."""
        self._draining.set()

    def reserve(self) -> Ticket:
        """A place in line, or QueueFull when slots and queue are all taken (Draining when
        the server is shutting down)."""
        if self.draining:
            raise self._refusal()
        if self.running + self.queued >= self.slots + self.max_queue:
            raise QueueFull
        self._move(queued=+1)
        return Ticket(self)

    async def _acquire(self) -> None:
        """A running slot, or the refusal once the server starts shutting down."""
        if self.draining:
            raise self._refusal()
        if not self._sem.locked():
            await self._sem.acquire()  # free: returns at once
            return
        slot = asyncio.ensure_future(self._sem.acquire())
        drained = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait((slot, drained), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the request itself was cancelled (its client left)
            drained.cancel()
            if slot.done() and not slot.cancelled():
                self._sem.release()
            else:
                slot.cancel()
            raise
        drained.cancel()
        if not slot.done():
            slot.cancel()
            raise self._refusal()
        if self.draining:  # both at once: the slot goes back, the request is turned away
            self._sem.release()
            raise self._refusal()

    def _move(self, queued: int = 0, running: int = 0) -> None:
        self.queued += queued
        self.running += running
        if self._on_change is not None:
            self._on_change(self.running, self.queued)
