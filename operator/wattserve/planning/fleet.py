"""Fleet placement (pure): every ModelDeployment on its best pool that still has room.

Members are taken in a fixed order — higher ``spec.priority`` first, then the older
(``creationTimestamp``), then namespace/name — and each takes the best-ranked feasible
pool (its own objective, :func:`~wattserve.planning.placement.rank_feasible`) whose nodes
still hold all its replicas (:class:`~wattserve.planning.capacity.Ledger`). A model whose
best pool is full spills to the next feasible pool with room, and its reason says so
("cpu-general full: 48/48 vCPU committed; gpu-l4 at $2.5/1M tokens"); when no feasible
pool has room it is not placed (``full``: the operator's ``PoolsFull``).

What already runs (``Member.current_*``) stays counted on its pool until the member's own
turn, so a newcomer, whatever its priority, only takes free room: placement never evicts
a running model, and never sends pods to a pool they would wait in (Pending).

Re-balancing with hysteresis: a member that already runs on a pool with room stays there
unless the better pool saves at least ``Rebalance.min_gain`` of its objective AND it has
been on its current pool for ``Rebalance.dwell_seconds``; so a model moves back from a
spill pool once, not back and forth.

Capacity that grows never makes a re-plan worse: a running model can always stay exactly
as it runs (it takes back the room it held, on the nodes it held), it moves only where its
own objective is lower, and unplaced models only take free room; :func:`replan` does the
same from a previous plan for `wattserve plan --incumbent` (docs/placement.md §7).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from wattserve.api.types import ModelDeployment, Objective, ServingPool
from wattserve.planning.capacity import (
    Allocation,
    Ledger,
    PoolCapacity,
    Resources,
    ledgers,
    replica_request,
    shape_capacity,
)
from wattserve.planning.economics import MIN_PLANNING_RPS
from wattserve.planning.placement import (
    Candidate,
    Plan,
    failure_code,
    metric_text,
    plan,
    rank_feasible,
)
from wattserve.planning.shapes import served_tokens

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Rebalance:
    min_gain: float = 0.10  # share of the objective a move back must save
    dwell_seconds: float = 300.0  # time on the current pool before a move back


@dataclass(frozen=True)
class Member:
    md: ModelDeployment
    plan: Plan
    created: str = ""  # metadata.creationTimestamp (RFC 3339 sorts as text)
    current_pool: str | None = None  # where its workload runs now
    current_replicas: int = 0  # replicas it runs there (reserved if larger than planned)
    current_request: Resources | None = None  # what one of its running pods requests
    placed_at: float | None = None  # epoch seconds it landed on current_pool

    @property
    def key(self) -> Key:
        return self.md.namespace, self.md.name

    def order(self) -> tuple[int, str, str, str]:
        return (-self.md.spec.priority, self.created, self.md.namespace, self.md.name)


@dataclass(frozen=True)
class Assignment:
    key: Key
    candidate: Candidate | None  # None: not placed
    reason: str
    full: bool = False  # feasible pools exist, none has room (PoolsFull)
    spilled_from: str | None = None  # the better pool that was full
    request: Resources = field(default_factory=Resources)
    replicas: int = 0
    recheck_after_s: float | None = None  # stayed for the dwell time: look again then


@dataclass(frozen=True)
class Totals:
    placed: int
    unplaced: int
    usd_per_hour: float
    watts: float
    grams_co2_per_hour: float

    def objective(self, objective: Objective) -> float:
        if objective is Objective.ENERGY:
            return self.watts
        if objective is Objective.CARBON:
            return self.grams_co2_per_hour
        return self.usd_per_hour


def order(members: Iterable[Member]) -> list[Member]:
    return sorted(members, key=Member.order)


def assign(members: Sequence[Member], pools: Sequence[ServingPool],
           capacities: Mapping[str, PoolCapacity] | None = None, now: float = 0.0,
           policy: Rebalance | None = None, prefer: Mapping[Key, str] | None = None,
           ) -> dict[Key, Assignment]:
    """Place the fleet greedily in member order; ``capacities`` default to maxNodes shapes.
    ``prefer``: a pool to try first for some members (the fleet optimum's choice, see
    planning/refine.py); the rules for running models (hysteresis, never evict) still hold."""
    return assign_on_books(members, pools, capacities, now, policy, prefer)[0]


def assign_on_books(members: Sequence[Member], pools: Sequence[ServingPool],
                    capacities: Mapping[str, PoolCapacity] | None = None, now: float = 0.0,
                    policy: Rebalance | None = None, prefer: Mapping[Key, str] | None = None,
                    ) -> tuple[dict[Key, Assignment], dict[str, Ledger]]:
    """:func:`assign`, and the ledgers as it left them (what newcomers that come after
    every member in order would find: see :func:`assign_newcomer`)."""
    policy = policy or Rebalance()
    by_name = {pool.name: pool for pool in pools}
    caps = dict(capacities or {})
    for pool in pools:
        caps.setdefault(pool.name, shape_capacity(pool))
    books = ledgers(list(caps.values()))
    # What runs stays counted until its own turn: placement never evicts a running model.
    held: dict[Key, tuple[str, Allocation]] = {}
    for member in members:
        where = member.current_pool
        if (where is not None and where in books and member.current_request is not None
                and member.current_replicas):
            held[member.key] = (where, books[where].force(member.current_request,
                                                          member.current_replicas))
    # A pool whose running models fit its total is taken to run them as they are (the
    # scheduler found them nodes): there each can stay exactly as it runs, whatever order
    # the ledger charged them in. A pool that shrank below what runs on it re-packs them.
    over = {name for name, book in books.items() if not book.capacity.total.holds(book.used)}
    out: dict[Key, Assignment] = {}
    for member in order(members):
        where, allocation = held.pop(member.key, (None, None))
        if where is not None and allocation is not None:
            books[where].release(allocation)
        stays = allocation if where not in over else None
        got = out[member.key] = _assign_one(member, by_name, books, now, policy, stays,
                                            (prefer or {}).get(member.key))
        if got.candidate is None and where is not None and member.current_request is not None:
            # not placed, but its workload keeps running where it is: still counted there
            books[where].force(member.current_request, member.current_replicas)
    return out, books


def assign_newcomer(member: Member, pools: Mapping[str, ServingPool],
                    books: dict[str, Ledger], policy: Rebalance | None = None) -> Assignment:
    """What :func:`assign` gives a member with nothing running (``current_pool`` None) that
    comes after every member already placed on ``books``: its turn is last, it holds no
    room before it, so the others' assignments do not change. Takes its room on ``books``."""
    assert member.current_pool is None
    return _assign_one(member, pools, books, 0.0, policy or Rebalance())


def _assign_one(member: Member, pools: Mapping[str, ServingPool], books: dict[str, Ledger],
                now: float, policy: Rebalance, held: Allocation | None = None,
                prefer: str | None = None) -> Assignment:
    """``held``: where the member's running replicas sit (just released). Staying as it runs
    always fits: it takes back exactly that allocation, so a re-plan never leaves a running
    model without room, and it only moves to a pool its own objective ranks better."""
    ranked = [cand for cand in rank_feasible(member.plan, member.md.spec.placement.pool)
              if cand.pool in pools and cand.pool in books]
    if not ranked:
        return Assignment(member.key, None, member.plan.reason)
    best = ranked[0]
    if prefer is not None:
        ranked.sort(key=lambda cand: cand.pool != prefer)  # stable: the rest keep their rank
    objective = member.md.spec.objective
    options: list[tuple[Candidate, Resources, int, Allocation | None]] = []
    full: list[str] = []
    for cand in ranked:
        request = replica_request(cand, pools[cand.pool])
        replicas = cand.replicas
        if cand.pool == member.current_pool:
            replicas = max(replicas, member.current_replicas)
            if (held is not None and member.current_request is not None
                    and member.current_request.holds(request)
                    and replicas <= member.current_replicas):
                options.append((cand, request, replicas, held))  # stays as it runs
                continue
        if books[cand.pool].fits(request, replicas):
            options.append((cand, request, replicas, None))
        elif not options:
            full.append(f"{cand.pool} full: {books[cand.pool].usage()}")
    if not options:
        return Assignment(member.key, None, "no feasible pool has room: " + "; ".join(full),
                          full=True)
    choice = options[0]
    note = ""
    recheck: float | None = None
    current = next((opt for opt in options if opt[0].pool == member.current_pool), None)
    if current is not None and current is not choice:
        gain = 1 - _figure(choice[0], objective) / max(_figure(current[0], objective), 1e-300)
        age = math.inf if member.placed_at is None else now - member.placed_at
        if gain < max(policy.min_gain, 0.0):  # never a move its own objective ranks worse
            note = (f"staying on {current[0].pool}: {choice[0].pool} would save {gain:.0%} "
                    f"(< {policy.min_gain:.0%})")
            choice = current
        elif age < policy.dwell_seconds:
            note = (f"staying on {current[0].pool}: {choice[0].pool} saves {gain:.0%}; moves "
                    f"after {policy.dwell_seconds:.0f} s on a pool")  # no clock: one status
            choice = current
            recheck = policy.dwell_seconds - age
    cand, request, replicas, stays = choice
    if stays is not None:
        books[cand.pool].restore(stays)
    else:
        books[cand.pool].place(request, replicas)
    spilled = best.pool if cand is not best else None
    if note:
        reason = f"{note}; {cand.pool} at {metric_text(objective, cand)}"
    elif spilled is not None and not full:  # its better pool had room: the fleet optimum
        reason = (f"{cand.pool} at {metric_text(objective, cand)}: the fleet optimum gives "
                  f"{spilled}'s room to models that save more there")
    elif spilled is not None:
        reason = "; ".join(full) + f"; {cand.pool} at {metric_text(objective, cand)}"
    else:
        reason = member.plan.reason
    return Assignment(member.key, cand, reason, spilled_from=spilled, request=request,
                      replicas=replicas, recheck_after_s=recheck)


STATELESS = Rebalance(min_gain=0.0, dwell_seconds=0.0)  # a plan, not a live move


def better(first: Totals, second: Totals, objective: Objective) -> bool:
    """Whether ``first`` is a strictly better fleet: more models placed, then a lower
    fleet objective."""
    if first.placed != second.placed:
        return first.placed > second.placed
    return first.objective(objective) < second.objective(objective)


def seeded(member: Member, incumbent: Assignment | None,
           pools: Mapping[str, ServingPool]) -> Member:
    """The member as if ``incumbent`` ran: its pool, replicas and pod request."""
    if incumbent is None or incumbent.candidate is None:
        return replace(member, current_pool=None, current_replicas=0, current_request=None)
    cand = incumbent.candidate
    request = (incumbent.request if incumbent.replicas and incumbent.request != Resources()
               else replica_request(cand, pools[cand.pool]))
    return replace(member, current_pool=cand.pool,
                   current_replicas=incumbent.replicas or cand.replicas,
                   current_request=request, placed_at=None)


def replan(members: Sequence[Member], pools: Sequence[ServingPool],
           capacities: Mapping[str, PoolCapacity] | None,
           incumbent: Mapping[Key, Assignment], objective: Objective = Objective.COST,
           assigner: Callable[..., dict[Key, Assignment]] | None = None,
           ) -> dict[Key, Assignment]:
    """Re-plan a fleet from a previous plan (``incumbent``, e.g. the plan before capacity
    grew): the better of (a) the incumbent improved — every model keeps its placement or
    moves where its own objective is lower, placed models stay placed, unplaced ones take
    free room — and (b) the fresh greedy. (a) is never worse than the incumbent when the
    incumbent still fits ``capacities`` (it does when capacity only grew) and every model's
    objective is ``objective``; so neither is the result. ``assigner``: :func:`assign` or
    one that is never worse than it (planning/refine.place)."""
    assigner = assigner or assign
    by_name = {pool.name: pool for pool in pools}
    improved = assigner([seeded(m, incumbent.get(m.key), by_name) for m in members], pools,
                      capacities, policy=STATELESS)
    fresh = assigner([seeded(m, None, by_name) for m in members], pools, capacities)
    pick = {k: a.candidate for k, a in fresh.items()}
    keep = {k: a.candidate for k, a in improved.items()}
    if better(totals(members, pick), totals(members, keep), objective):
        return fresh
    return improved


def _figure(cand: Candidate, objective: Objective) -> float:
    if objective is Objective.ENERGY:
        return cand.joules_per_token
    if objective is Objective.CARBON:
        return cand.grams_co2_per_million_tokens
    return cand.usd_per_million_tokens


def candidate_rates(md: ModelDeployment, cand: Candidate) -> tuple[float, float, float]:
    """($/hour, watts, gCO2/hour) of a placed candidate."""
    load = md.spec.expected_load
    prompt, output = served_tokens(md.spec.model.task, load.prompt_tokens, load.output_tokens)
    tokens_s = max(load.requests_per_second, MIN_PLANNING_RPS) * (output if output else prompt)
    return (cand.usd_per_hour, cand.joules_per_token * tokens_s,
            cand.grams_co2_per_million_tokens * tokens_s * 3600 / 1e6)


def totals(members: Sequence[Member], chosen: Mapping[Key, Candidate | None]) -> Totals:
    usd = watts = grams = 0.0
    placed = 0
    for member in members:
        cand = chosen.get(member.key)
        if cand is None:
            continue
        placed += 1
        rate = candidate_rates(member.md, cand)
        usd, watts, grams = usd + rate[0], watts + rate[1], grams + rate[2]
    return Totals(placed, len(members) - placed, usd, watts, grams)


def members_of(mds: Sequence[ModelDeployment], pools: Sequence[ServingPool]) -> list[Member]:
    """Fresh members (nothing running yet) for the CLI and benchmarks; identical specs are
    planned once."""
    cache: dict[object, Plan] = {}
    out = []
    for md in mds:
        result = cache.get(md.spec)
        if result is None:
            result = cache[md.spec] = plan(md, pools)
        elif result.model_deployment != md.name:
            result = Plan(md.name, result.objective, result.chosen, result.candidates,
                          result.reason, result.code)
        out.append(Member(md, result))
    return out


def fleet_plan(member: Member, got: Assignment) -> Plan:
    """The member's plan with the fleet's choice and reason (status.placement's source)."""
    base = member.plan
    if got.candidate is None:
        code = base.code if base.chosen is None else failure_code(base.candidates)
        return Plan(base.model_deployment, base.objective, None, base.candidates, got.reason,
                    code)
    chosen = replace(got.candidate, reason=got.reason)
    candidates = tuple(chosen if cand.pool == chosen.pool else cand
                       for cand in base.candidates)
    return Plan(base.model_deployment, base.objective, chosen, candidates, got.reason,
                base.code)
