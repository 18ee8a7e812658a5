"""Bounded admission: `slots` requests run, up to `max_queue` wait, the rest get 429.

`reserve()` is synchronous so the 429 decision is made before any response starts;
the returned ticket waits for a running slot in `async with ticket:`. `abandon()` frees
a reservation that never ran (e.g. a stream whose client left before it started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType


class QueueFull(Exception):
    """More requests than running slots plus the bounded queue."""


class Ticket:
    def __init__(self, gate: AdmissionGate) -> None:
        self._gate = gate
        self._state = "queued"  # queued -> running -> done

    async def __aenter__(self) -> Ticket:
        try:
            await self._gate._sem.acquire()
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
    ) -> None:
        self.slots = max(1, slots)
        self.max_queue = max(0, max_queue)
        self._sem = asyncio.Semaphore(self.slots)
        self.running = 0
        self.queued = 0
        self._on_change = on_change

    def reserve(self) -> Ticket:
        """A place in line, or QueueFull when slots and queue are all taken."""
        if self.running + self.queued >= self.slots + self.max_queue:
            raise QueueFull
        self._move(queued=+1)
        return Ticket(self)

    def _move(self, queued: int = 0, running: int = 0) -> None:
        self.queued += queued
        self.running += running
        if self._on_change is not None:
            self._on_change(self.running, self.queued)
