"""The fleet assignment kept up to date as ModelDeployments arrive (pure).

:func:`wattserve.planning.refine.place` places the whole fleet; a create wave of N
ModelDeployments would run it N times over a growing fleet (O(N²)). A newcomer with nothing
running that comes after every member in the greedy's order (lower priority, or as high and
created later: a create wave) takes its turn last: the members before it keep exactly their
assignments, and it takes what the greedy's ledgers have left. So :meth:`FleetPlacement.add`
places only the newcomers, on the ledgers the last full pass left behind, and its result is
exactly :func:`~wattserve.planning.refine.place` over all members at the same ``now``
(tests/unit/test_fleet_incremental.py) — as long as that result is the greedy's: when the
fleet's program chose another plan, or a newcomer does not get its own best pool (the
program might then move others), it answers None and the caller places the fleet afresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wattserve.api.types import ServingPool
from wattserve.planning.capacity import Ledger, PoolCapacity
from wattserve.planning.fleet import (
    Assignment,
    Key,
    Member,
    Rebalance,
    assign_newcomer,
    assign_on_books,
)
from wattserve.planning.refine import greedy_stands, place


@dataclass
class FleetPlacement:
    """One fleet assignment: ``result`` per member key, and what extends it."""

    result: dict[Key, Assignment]
    now: float
    pools: dict[str, ServingPool] = field(default_factory=dict)
    policy: Rebalance = field(default_factory=Rebalance)
    books: dict[str, Ledger] | None = None  # None: not the greedy's result (not extendable)
    last: tuple[int, str, str, str] | None = None  # the order of the last member

    def add(self, newcomers: Sequence[Member]) -> dict[Key, Assignment] | None:
        """Place ``newcomers`` after the others: their assignments, or None when only a
        full pass gives the right answer (then this placement must not be used again)."""
        if self.books is None:
            return None
        ordered = sorted(newcomers, key=Member.order)
        if (ordered and self.last is not None and ordered[0].order() <= self.last) or any(
                m.current_pool is not None or m.key in self.result for m in ordered):
            self.books = None  # not last in the greedy's order, or holding room already
            return None
        got: dict[Key, Assignment] = {}
        for member in ordered:
            one = got[member.key] = assign_newcomer(member, self.pools, self.books,
                                                    self.policy)
            if one.candidate is None or one.spilled_from is not None:
                self.books = None  # the fleet's program might now choose other pools
                return None
        self.result.update(got)
        if ordered:
            self.last = ordered[-1].order()
        return got


def place_fleet(members: Sequence[Member], pools: Sequence[ServingPool],
                capacities: Mapping[str, PoolCapacity] | None, now: float,
                policy: Rebalance) -> FleetPlacement:
    """:func:`~wattserve.planning.refine.place`, kept extendable when it is the greedy's."""
    greedy, books = assign_on_books(members, pools, capacities, now, policy)
    by_name = {pool.name: pool for pool in pools}
    if greedy_stands(members, greedy):
        last = max((m.order() for m in members), default=None)
        return FleetPlacement(greedy, now, by_name, policy, books, last)
    return FleetPlacement(place(members, pools, capacities, now, policy, greedy=greedy), now,
                          by_name, policy)
