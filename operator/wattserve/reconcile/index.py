"""Which ModelDeployments a ServingPool change must re-plan (pure, in-memory index).

Affected by a change (create, update or delete) of pool P, or of its nodes: the
ModelDeployments placed on P (their workload runs there), pinned to P (their pin may now
work or fail), spilled from P (P was full; it may have room now) and those placed nowhere
(P may be the pool they were waiting for). Everything else is re-planned by the
periodic resync, which re-plans every ModelDeployment.
"""

from __future__ import annotations

from dataclasses import dataclass

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Entry:
    placed: str | None  # pool the workload runs on (or was planned on)
    pinned: str | None  # spec.placement.pool
    spilled_from: str | None = None  # the better pool that was full
    planned: str | None = None  # the pool the last decision chose (None: not placed)


class PlacementIndex:
    def __init__(self) -> None:
        self._entries: dict[Key, Entry] = {}
        self._by_pool: dict[str, set[Key]] = {}
        self._unplaced: set[Key] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Entry | None:
        return self._entries.get(key)

    def record(self, key: Key, placed: str | None, pinned: str | None,
               spilled_from: str | None = None, planned: str | None = None) -> None:
        self.forget(key)
        entry = Entry(placed, pinned, spilled_from, planned)
        self._entries[key] = entry
        if placed is None:
            self._unplaced.add(key)
        for pool in {placed, pinned, spilled_from} - {None}:
            assert pool is not None
            self._by_pool.setdefault(pool, set()).add(key)

    def forget(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._unplaced.discard(key)
        for pool in {entry.placed, entry.pinned, entry.spilled_from} - {None}:
            assert pool is not None
            keys = self._by_pool.get(pool)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_pool[pool]

    def affected(self, pool: str) -> set[Key]:
        """ModelDeployments to re-plan when ``pool`` is created, updated or deleted."""
        return set(self._by_pool.get(pool, ())) | self._unplaced
