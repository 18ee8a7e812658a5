"""The operator's fleet placement: the greedy (planning/fleet.py), then the fleet's linear
program over the same choices, taken only when it is strictly better and keeps every rule
the greedy keeps (docs/placement.md §7).

The greedy fills each model's best pool in priority order; on tight pools that sends a
small model to a dear GPU pool when a cheap pool's room went to a model that saves less
there. HiGHS (through ``scipy.optimize.milp``) minimises the fleet's $/hour over the models
whose objective is cost — the LP relaxation always (each model then prefers the pool with
its largest share), the exact ILP too for fleets up to ``EXACT_MAX_COLUMNS`` model × pool
choices (``time_limit`` 0.3 s) — with:

- every model the greedy placed still placed (priority decides who gets a full pool; the
  program never trades a placed model for two others);
- a running model (``Member.current_pool``) offered only its current pool and the pools
  the greedy's hysteresis would let it move to (its own objective lower by at least
  ``Rebalance.min_gain``, after ``Rebalance.dwell_seconds``), and a move penalty of
  ``MOVE_PENALTY`` of its cost: no running model pays more or moves for nothing, so a
  re-plan never flaps and stays monotone in capacity (tests/unit/test_fleet_refine.py);
- models with another objective (energy, carbon, balanced) kept where the greedy put them.

Pool capacity is aggregated in the program; each choice is then realised by the greedy
itself (``assign(prefer=...)``: preferred pool first, per-node first-fit, what runs stays
as it runs), and taken only when it places as many models at a lower fleet $/hour.
Without scipy, past ``MAX_COLUMNS`` choices or when HiGHS finds nothing in time, the
greedy's placement stands.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence

from wattserve.api.types import Objective, ServingPool
from wattserve.planning import fleet
from wattserve.planning.capacity import PoolCapacity, Resources, replica_request, shape_capacity
from wattserve.planning.fleet import (
    Assignment,
    Key,
    Member,
    Rebalance,
    Totals,
    _figure,
    assign,
    better,
    candidate_rates,
    totals,
)
from wattserve.planning.placement import Candidate, rank_feasible

TIME_LIMIT_S = 0.3  # HiGHS wall-clock bound of the ILP per re-plan
LP_TIME_LIMIT_S = 1.0  # and of the LP relaxation (≈ 0.1 CPU s at 1,000 × 20)
MAX_COLUMNS = 20_000  # model × pool choices (1,000 models × 20 pools); past it the greedy stands
EXACT_MAX_COLUMNS = 4_000  # the ILP too up to here (≈ 200 models × 20 pools)
MIN_GAIN = 1e-4  # share of the fleet's $/hour the program's plan must save to be taken
MOVE_PENALTY = 0.01  # share of a running model's cost added to a move: no moves for nothing

Column = tuple[int, Candidate, Resources, int]  # (member index, candidate, request, replicas)


def place(members: Sequence[Member], pools: Sequence[ServingPool],
          capacities: Mapping[str, PoolCapacity] | None = None, now: float = 0.0,
          policy: Rebalance | None = None, time_limit_s: float = TIME_LIMIT_S,
          max_columns: int = MAX_COLUMNS,
          exact_max_columns: int = EXACT_MAX_COLUMNS,
          greedy: Mapping[Key, Assignment] | None = None) -> dict[Key, Assignment]:
    """The greedy's assignment, or the best strictly better one of: the LP relaxation's
    choice and (up to ``exact_max_columns``) the ILP's, each realised by the greedy.
    ``greedy``: the greedy's assignment of the same inputs when the caller has it."""
    policy = policy or Rebalance()
    greedy = dict(greedy) if greedy is not None else assign(members, pools, capacities, now,
                                                            policy)
    if greedy_stands(members, greedy):
        return greedy
    best, best_totals = greedy, _totals(members, greedy)
    for choice in _choices(members, pools, capacities, greedy, now, policy, time_limit_s,
                           max_columns, exact_max_columns):
        got = assign(members, pools, capacities, now, policy, prefer=choice)
        got_totals = _totals(members, got)
        if _keeps(members, greedy, got) and _gains(got_totals, best_totals):
            best, best_totals = got, got_totals
    return best


def greedy_stands(members: Sequence[Member], greedy: Mapping[Key, Assignment]) -> bool:
    """Whether :func:`place` returns the greedy's assignment without solving anything."""
    return not members or not have_scipy() or _each_on_its_best(members, greedy)


def _each_on_its_best(members: Sequence[Member], greedy: Mapping[Key, Assignment]) -> bool:
    """Every model placed on its own best pool: no fleet costs less (nothing to solve)."""
    return all(greedy[m.key].candidate is not None and greedy[m.key].spilled_from is None
               for m in members)


def _gains(new: Totals, old: Totals) -> bool:
    """More placed, or as many at least ``MIN_GAIN`` cheaper: a tie (identical models
    shuffled, float noise) keeps the greedy's plan, so a re-plan is stable."""
    if new.placed != old.placed:
        return better(new, old, Objective.COST)
    return new.usd_per_hour < old.usd_per_hour * (1 - MIN_GAIN)


def have_scipy() -> bool:
    return importlib.util.find_spec("scipy") is not None


def warm_up() -> None:
    """Import the solver now (a long-running caller's start), so that the first re-plan
    does not pay for it."""
    if have_scipy():
        importlib.import_module("scipy.optimize")
        importlib.import_module("scipy.sparse")


def replan(members: Sequence[Member], pools: Sequence[ServingPool],
           capacities: Mapping[str, PoolCapacity] | None,
           incumbent: Mapping[Key, Assignment], objective: Objective = Objective.COST,
           ) -> dict[Key, Assignment]:
    """:func:`wattserve.planning.fleet.replan` with :func:`place` for both of its plans."""
    return fleet.replan(members, pools, capacities, incumbent, objective, assigner=place)


def _totals(members: Sequence[Member], got: Mapping[Key, Assignment]) -> Totals:
    return totals(members, {key: a.candidate for key, a in got.items()})


def _keeps(members: Sequence[Member], greedy: Mapping[Key, Assignment],
           steered: Mapping[Key, Assignment]) -> bool:
    """Every model the greedy placed is placed; no running model pays more for its own
    objective than where it runs."""
    for member in members:
        old, new = greedy[member.key].candidate, steered[member.key].candidate
        if old is not None and new is None:
            return False
        if member.current_pool is not None and new is not None:
            here = next((c for c in member.plan.candidates
                         if c.pool == member.current_pool and c.feasible), None)
            objective = member.md.spec.objective
            if here is not None and _figure(new, objective) > _figure(here, objective) * (
                    1 + 1e-12):
                return False
    return True


def _columns(members: Sequence[Member], by_name: Mapping[str, ServingPool],
             caps: Mapping[str, PoolCapacity], greedy: Mapping[Key, Assignment], now: float,
             policy: Rebalance) -> list[Column]:
    out: list[Column] = []
    for index, member in enumerate(members):
        ranked = [cand for cand in rank_feasible(member.plan, member.md.spec.placement.pool)
                  if cand.pool in by_name and cand.pool in caps]
        got = greedy[member.key].candidate
        if member.md.spec.objective is not Objective.COST:
            ranked = [got] if got is not None else []  # kept where the greedy put it
        here = next((c for c in ranked if c.pool == member.current_pool), None)
        for cand in ranked:
            request = replica_request(cand, by_name[cand.pool])
            replicas = cand.replicas
            if here is not None and cand is here:
                replicas = max(replicas, member.current_replicas)
                if member.current_request is not None and member.current_request.holds(
                        request):
                    request = member.current_request
            elif here is not None and not _may_move(member, here, cand, now, policy):
                continue
            out.append((index, cand, request, replicas))
    return out


def _may_move(member: Member, here: Candidate, cand: Candidate, now: float,
              policy: Rebalance) -> bool:
    """The greedy's hysteresis: a running model moves only where its own objective is lower
    by ``min_gain`` (and never higher), after ``dwell_seconds`` on its pool."""
    objective = member.md.spec.objective
    gain = 1 - _figure(cand, objective) / max(_figure(here, objective), 1e-300)
    age = math.inf if member.placed_at is None else now - member.placed_at
    return gain >= max(policy.min_gain, 0.0) and gain > 0 and age >= policy.dwell_seconds


def _choices(members: Sequence[Member], pools: Sequence[ServingPool],
             capacities: Mapping[str, PoolCapacity] | None,
             greedy: Mapping[Key, Assignment], now: float, policy: Rebalance,
             time_limit_s: float, max_columns: int,
             exact_max_columns: int) -> list[dict[Key, str]]:
    """Each member's preferred pool from the LP relaxation (its largest share) and, for
    small enough fleets, from the ILP (HiGHS within ``time_limit_s``)."""
    import numpy as np
    from scipy.optimize import (  # type: ignore[import-untyped,unused-ignore]
        Bounds,
        LinearConstraint,
        milp,
    )
    from scipy.sparse import coo_array  # type: ignore[import-untyped,unused-ignore]

    by_name = {pool.name: pool for pool in pools}
    caps = {pool.name: shape_capacity(pool) for pool in pools} | dict(capacities or {})
    columns = _columns(members, by_name, caps, greedy, now, policy)
    if not columns or len(columns) > max_columns:
        return []
    n_x, n_m = len(columns), len(members)
    values = []
    for index, cand, _, _ in columns:
        member = members[index]
        usd = candidate_rates(member.md, cand)[0]
        if member.current_pool is not None and cand.pool != member.current_pool:
            usd *= 1 + MOVE_PENALTY
        values.append(usd)
    penalty = 10.0 * (sum(values) + 1.0)  # an unplaced model costs more than any fleet
    cost = np.array(values + [penalty] * n_m)
    pool_row = {name: n_m + 3 * p for p, name in enumerate(sorted(caps))}
    rows, cols, data = [], [], []
    for col, (index, cand, request, replicas) in enumerate(columns):
        rows.append(index)  # each model once or not at all
        cols.append(col)
        data.append(1.0)
        base = pool_row[cand.pool]
        for r, amount in enumerate((request.cpu, request.memory_gib, float(request.gpus))):
            if amount:
                rows.append(base + r)
                cols.append(col)
                data.append(amount * replicas)
    for index in range(n_m):
        rows.append(index)
        cols.append(n_x + index)
        data.append(1.0)
    limits = []
    for name in sorted(caps):
        total = caps[name].total
        limits += [total.cpu, total.memory_gib, float(total.gpus)]
    matrix = coo_array((data, (rows, cols)), shape=(n_m + len(limits), n_x + n_m)).tocsr()
    lower = np.array([1.0] * n_m + [-np.inf] * len(limits))
    upper = np.array([1.0] * n_m + limits)
    # what the greedy placed stays placed: its "unplaced" variable is fixed at 0
    unplaced_max = [0.0 if greedy[m.key].candidate is not None else 1.0 for m in members]
    bounds = Bounds(np.zeros(n_x + n_m), np.array([1.0] * n_x + unplaced_max))
    constraints = LinearConstraint(matrix, lower, upper)
    out = []
    relaxed = milp(cost, constraints=constraints, bounds=bounds,
                   options={"time_limit": LP_TIME_LIMIT_S, "presolve": True})
    if relaxed.x is not None:
        share: dict[int, tuple[float, str]] = {}
        for col, (index, cand, _, _) in enumerate(columns):
            if relaxed.x[col] > share.get(index, (1e-6, ""))[0]:
                share[index] = (float(relaxed.x[col]), cand.pool)
        out.append({members[index].key: pool for index, (_, pool) in share.items()})
    if n_x <= exact_max_columns:
        exact = milp(cost, constraints=constraints, integrality=np.ones(n_x + n_m),
                     bounds=bounds, options={"time_limit": time_limit_s, "presolve": True})
        if exact.x is not None:
            out.append({members[index].key: cand.pool
                        for col, (index, cand, _, _) in enumerate(columns)
                        if exact.x[col] > 0.5})
    return out
