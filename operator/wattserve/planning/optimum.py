"""The fleet optimum to measure the greedy placement against: an exact ILP (HiGHS through
``scipy.optimize.milp``, bounded in time).

Variables: x[m, p] = 1 when model m runs on pool p (its planned best shape there, one of
the plan's feasible candidates), u[m] = 1 when m is left unplaced. Each model is placed
once or not at all; each pool's placed replicas fit its total CPU, memory and GPUs.
Minimised: the fleet's $/hour (or watts, or gCO2/hour), plus a penalty per unplaced model
larger than any fleet's cost, so the optimum first places as many models as fit.

Pool capacity is aggregated over the pool's nodes (per-node packing is relaxed), so the
optimum is a lower bound on any placement the scheduler can run: a gap to it includes
the packing loss. scipy is an optional dependency (the ``fleet`` extra); :func:`available`
says whether it is installed.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wattserve.api.types import Objective, ServingPool
from wattserve.planning.capacity import PoolCapacity, replica_request, shape_capacity
from wattserve.planning.fleet import Key, Member, Totals, candidate_rates, totals
from wattserve.planning.placement import Candidate, rank_feasible

MISSING_SCIPY = ("the fleet optimum needs scipy: pip install 'wattserve[fleet]' "
                 "(or use --no-optimum)")


@dataclass(frozen=True)
class Optimum:
    chosen: dict[Key, Candidate | None]
    totals: Totals
    seconds: float
    status: str  # "optimal", "time limit (best found)", "time limit (none found)", ...
    gap: float | None  # relative MIP gap HiGHS reports (0 when proven optimal)


def available() -> bool:
    return importlib.util.find_spec("scipy") is not None


def _value(cand: Candidate, member: Member, objective: Objective) -> float:
    usd, watts, grams = candidate_rates(member.md, cand)
    return {Objective.ENERGY: watts, Objective.CARBON: grams}.get(objective, usd)


def solve(members: Sequence[Member], pools: Sequence[ServingPool],
          capacities: Mapping[str, PoolCapacity] | None = None,
          objective: Objective = Objective.COST, time_limit_s: float = 30.0) -> Optimum:
    """Minimise the fleet objective exactly (within ``time_limit_s``)."""
    import numpy as np
    from scipy.optimize import (  # type: ignore[import-untyped,unused-ignore]
        Bounds,
        LinearConstraint,
        milp,
    )
    from scipy.sparse import coo_array  # type: ignore[import-untyped,unused-ignore]

    by_name = {pool.name: pool for pool in pools}
    caps = {pool.name: shape_capacity(pool) for pool in pools} | dict(capacities or {})
    started = time.perf_counter()
    columns: list[tuple[int, Candidate]] = []  # (member index, candidate)
    for index, member in enumerate(members):
        for cand in rank_feasible(member.plan, member.md.spec.placement.pool):
            if cand.pool in by_name and cand.pool in caps:
                columns.append((index, cand))
    n_x, n_m = len(columns), len(members)
    values = [_value(cand, members[i], objective) for i, cand in columns]
    penalty = 10.0 * (sum(values) + 1.0)
    cost = np.array(values + [penalty] * n_m)

    rows, cols, data = [], [], []
    for col, (index, _) in enumerate(columns):  # each model placed once or not at all
        rows.append(index)
        cols.append(col)
        data.append(1.0)
    for index in range(n_m):
        rows.append(index)
        cols.append(n_x + index)
        data.append(1.0)
    pool_names = sorted(caps)
    limits: list[float] = []
    for p, name in enumerate(pool_names):
        total = caps[name].total
        for r, limit in enumerate((total.cpu, total.memory_gib, float(total.gpus))):
            row = n_m + 3 * p + r
            limits.append(limit)
            for col, (_, cand) in enumerate(columns):
                if cand.pool != name:
                    continue
                need = replica_request(cand, by_name[name])
                amount = (need.cpu, need.memory_gib, float(need.gpus))[r] * cand.replicas
                if amount:
                    rows.append(row)
                    cols.append(col)
                    data.append(amount)
    n_rows = n_m + 3 * len(pool_names)
    matrix = coo_array((data, (rows, cols)), shape=(n_rows, n_x + n_m)).tocsr()
    lower = np.array([1.0] * n_m + [-np.inf] * len(limits))
    upper = np.array([1.0] * n_m + limits)
    result = milp(cost, constraints=LinearConstraint(matrix, lower, upper),
                  integrality=np.ones(n_x + n_m), bounds=Bounds(0, 1),
                  options={"time_limit": time_limit_s, "presolve": True})
    seconds = time.perf_counter() - started
    chosen: dict[Key, Candidate | None] = {member.key: None for member in members}
    if result.x is not None:
        for col, (index, cand) in enumerate(columns):
            if result.x[col] > 0.5:
                chosen[members[index].key] = cand
    status = {0: "optimal", 1: "time limit (best found)" if result.x is not None
              else "time limit (none found)"}.get(result.status, str(result.message))
    gap = getattr(result, "mip_gap", None)
    return Optimum(chosen, totals(members, chosen), seconds, status,
                   None if gap is None else float(gap))
