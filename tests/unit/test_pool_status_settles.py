"""The ServingPool status writer waits until the ModelDeployments cached stop changing in
number (kopf streams them in after a start), so a restart with everything in place writes
no status counted from part of them; a steady stream of changes defers it only so long."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from wattserve.controller import poolstatus
from wattserve.controller.config import OperatorConfig


def _run(counts: list[int], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of ModelDeployments cached at each pass, and at which passes it wrote."""
    rec: Any = SimpleNamespace(synced=asyncio.Event(), mds={})
    rec.synced.set()
    written: list[int] = []
    passes = iter(range(len(counts)))

    async def sleep(_: float) -> None:
        i = next(passes, None)
        if i is None:
            raise asyncio.CancelledError
        rec.mds = dict.fromkeys(range(counts[i]))
        sleep.i = i  # type: ignore[attr-defined]

    async def write(_: Any) -> int:
        written.append(sleep.i)  # type: ignore[attr-defined]
        return 0

    async def active(*_: Any) -> bool:
        return True

    monkeypatch.setattr(poolstatus.asyncio, "sleep", sleep)
    monkeypatch.setattr(poolstatus, "write_pool_statuses", write)
    monkeypatch.setattr(poolstatus.peering, "still_active", active)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(poolstatus.pool_status_forever(rec, OperatorConfig()))
    return written


def test_no_write_while_the_cache_is_still_filling(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run([200, 700, 1000, 1000, 1000], monkeypatch) == [3, 4]


def test_a_steady_stream_of_creates_defers_the_write_only_so_long(
        monkeypatch: pytest.MonkeyPatch) -> None:
    counts = list(range(1, 20))
    written = _run(counts, monkeypatch)
    assert written and written[0] == poolstatus.SETTLE_PASSES
    assert all(b - a == poolstatus.SETTLE_PASSES + 1 for a, b in itertools.pairwise(written))
