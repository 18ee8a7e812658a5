"""The placement decision: evaluate every pool, pick the best feasible one, explain."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wattserve.api.conditions import Reason
from wattserve.api.types import Budget, EngineChoice, ModelDeployment, Objective, ServingPool
from wattserve.planning.economics import (
    Economics,
    Targets,
    capacity_rps,
    economics,
    replicas_needed,
)
from wattserve.planning.performance import ReplicaPerformance, operating_point
from wattserve.planning.shapes import Shape, engines_for, served_tokens, shapes_for


@dataclass(frozen=True)
class Candidate:
    """One pool's best replica shape for a model, feasible or not, with the numbers."""

    pool: str
    engine: str
    accelerator: str  # accelerator type, or "cpu"
    tensor_parallel: int
    threads: int
    replicas_per_node: int
    feasible: bool
    reason: str  # why infeasible, why it lost, or why it was chosen
    replicas: int = 0
    nodes: int = 0
    cpu_request: int = 0  # whole CPUs (the limit on CPU pools)
    memory_request_gib: int = 0
    memory_gib: float = 0.0  # weights + overhead + one full-context KV cache
    predicted_p95_ms: float = math.inf
    predicted_ttft_p95_ms: float = math.inf
    tokens_per_second_per_replica: float = 0.0
    capacity_rps_per_replica: float = 0.0
    usd_per_hour: float = math.inf
    usd_per_million_tokens: float = math.inf
    joules_per_token: float = math.inf
    grams_co2_per_million_tokens: float = math.inf
    performance: ReplicaPerformance | None = None
    over_budget: bool = False  # infeasible only because of spec.budget
    cpu_request_millis: int = 0  # the CPU request in millicores; 0 = cpu_request x 1000

    @property
    def cpu_millis(self) -> int:
        """What one replica requests, in millicores (at least 1 CPU when not planned)."""
        return self.cpu_request_millis or max(1, self.cpu_request) * 1000

    def score(self, objective: Objective) -> tuple[float, ...]:
        """Sort key: the objective first, the others break ties."""
        cost, energy, carbon = (self.usd_per_million_tokens, self.joules_per_token,
                                self.grams_co2_per_million_tokens)
        if objective is Objective.ENERGY:
            return (energy, cost, carbon)
        if objective is Objective.CARBON:
            return (carbon, cost, energy)
        return (cost, energy, carbon)


@dataclass(frozen=True)
class Plan:
    model_deployment: str
    objective: Objective
    chosen: Candidate | None
    candidates: tuple[Candidate, ...]
    reason: str  # prose for people
    code: Reason = Reason.PLACED  # for programs: Placed, or the Placed=False reason


def failure_code(candidates: Sequence[Candidate]) -> Reason:
    """No pool is feasible: ``OverBudget`` when a pool failed only on the budget."""
    return Reason.OVER_BUDGET if any(c.over_budget for c in candidates) \
        else Reason.NO_FEASIBLE_POOL


def plan(md: ModelDeployment, pools: Sequence[ServingPool]) -> Plan:
    """Place ``md`` on the pool that meets its SLO and budget at the lowest objective."""
    spec = md.spec
    pools_by_name = {pool.name: pool for pool in pools}
    pin = spec.placement.pool
    if pin is not None and pin not in pools_by_name:
        known = ", ".join(sorted(pools_by_name)) or "none"
        return Plan(md.name, spec.objective, None, (),
                    f"pinned pool {pin!r} does not exist (pools: {known})",
                    Reason.PINNED_POOL_NOT_FOUND)
    if not pools:
        return Plan(md.name, spec.objective, None, (), "no ServingPools exist",
                    Reason.NO_SERVING_POOLS)
    context = _context(md)
    candidates = [_evaluate(md, pool, context)
                  for pool in sorted(pools, key=lambda p: p.name)]
    feasible = [cand for cand in candidates if cand.feasible]
    if pin is not None:
        pinned = next(cand for cand in candidates if cand.pool == pin)
        feasible = [pinned] if pinned.feasible else []
        if not pinned.feasible:
            return Plan(md.name, spec.objective, None, tuple(candidates),
                        f"pinned pool {pin!r} is infeasible: {pinned.reason}",
                        Reason.PINNED_POOL_INFEASIBLE)
    if not feasible:
        return Plan(md.name, spec.objective, None, tuple(candidates),
                    "no pool can serve this model: " + "; ".join(
                        f"{cand.pool}: {cand.reason}" for cand in candidates),
                    failure_code(candidates))
    ranked = _rank(feasible, spec.objective)
    best = ranked[0]
    why = _why_chosen(best, ranked[1:], spec.objective, pinned=pin is not None)
    final = []
    for cand in candidates:
        if cand is best:
            final.append(_with_reason(cand, why))
        elif cand.feasible:
            final.append(_with_reason(cand, _why_lost(cand, best, spec.objective, pin)))
        else:
            final.append(cand)
    chosen = next(cand for cand in final if cand.pool == best.pool)
    return Plan(md.name, spec.objective, chosen, tuple(final), why)


def rank_feasible(result: Plan, pinned: str | None = None) -> list[Candidate]:
    """The plan's feasible candidates, best first (only the pinned pool when pinned)."""
    if result.chosen is None:
        return []
    if pinned is not None:
        return [result.chosen]
    return _rank([cand for cand in result.candidates if cand.feasible], result.objective)


def _rank(feasible: list[Candidate], objective: Objective) -> list[Candidate]:
    if objective is not Objective.BALANCED:
        return sorted(feasible, key=lambda cand: (cand.score(objective), cand.pool))

    return sorted(feasible, key=lambda cand: (balanced_score(cand, feasible),
                                              cand.score(Objective.COST), cand.pool))


# Below these a figure counts as zero (a free pool, a zero-carbon grid): each is far under
# any real figure, so a pool at zero wins its axis by a wide margin instead of the axis
# dropping out (which made a cleaner pool lose).
_BALANCED_FLOORS = (("usd_per_million_tokens", 1e-6), ("joules_per_token", 1e-6),
                    ("grams_co2_per_million_tokens", 1e-6))


def balanced_score(cand: Candidate, feasible: Sequence[Candidate]) -> float:
    """Geometric mean of the candidate's $/token, J/token and gCO2/token, each relative to
    the best feasible one (1.0 = best on all three)."""
    ratios: list[float] = []
    for key, floor in _BALANCED_FLOORS:
        best = max(floor, min(float(getattr(other, key)) for other in feasible))
        ratios.append(max(floor, float(getattr(cand, key))) / best)
    return float(math.prod(ratios) ** (1 / 3))


def metric_text(objective: Objective, cand: Candidate) -> str:
    """The candidate's figure for the objective, e.g. \"$0.875/1M tokens\"."""
    if objective is Objective.BALANCED:
        return (f"${cand.usd_per_million_tokens:.3g}/1M tokens, "
                f"{cand.joules_per_token:.3g} J/token, "
                f"{cand.grams_co2_per_million_tokens:.3g} gCO2/1M tokens")
    if objective is Objective.ENERGY:
        return f"{cand.joules_per_token:.3g} J/token"
    if objective is Objective.CARBON:
        return f"{cand.grams_co2_per_million_tokens:.3g} gCO2/1M tokens"
    return f"${cand.usd_per_million_tokens:.3g}/1M tokens"


def _why_chosen(best: Candidate, others: list[Candidate], objective: Objective,
                pinned: bool) -> str:
    size = (f"TP {best.tensor_parallel}" if best.tensor_parallel
            else f"{best.threads} threads")
    what = (f"{best.replicas} × {best.engine} on {best.pool} ({size})"
            f" meets p95 {best.predicted_p95_ms:.0f} ms at {metric_text(objective, best)}")
    if pinned:
        return f"pinned: {what}"
    if not others:
        return f"only feasible pool: {what}"
    runner = others[0]
    return (f"lowest {objective.value}: {what}; "
            f"next best {runner.pool} at {metric_text(objective, runner)}")


def _why_lost(cand: Candidate, best: Candidate, objective: Objective, pin: str | None) -> str:
    if pin is not None:
        return f"feasible, but the ModelDeployment is pinned to {pin}"
    return (f"feasible, but {metric_text(objective, cand)} vs {metric_text(objective, best)} "
            f"on {best.pool}")


@dataclass(frozen=True)
class _Context:
    """What evaluating a model needs on every pool, worked out once per model."""

    prompt: int
    output: int
    targets: Targets
    floor: int  # max(1, minReplicas): a shape this small cannot get cheaper


def _context(md: ModelDeployment) -> _Context:
    spec = md.spec
    prompt, output = served_tokens(spec.model.task, spec.expected_load.prompt_tokens,
                                   spec.expected_load.output_tokens)
    targets = Targets(
        latency_p95_s=spec.slo.latency_p95_ms / 1000,
        ttft_p95_s=None if spec.slo.ttft_p95_ms is None else spec.slo.ttft_p95_ms / 1000,
        max_utilization=spec.scaling.target_utilization_percent / 100,
    )
    return _Context(prompt, output, targets, max(1, spec.scaling.min_replicas))


def evaluate_pool(md: ModelDeployment, pool: ServingPool) -> Candidate:
    """The pool's best shape for ``md``, or an infeasible candidate with the reason."""
    return _evaluate(md, pool, _context(md))


def _evaluate(md: ModelDeployment, pool: ServingPool, context: _Context) -> Candidate:
    spec = md.spec
    base: dict[str, Any] = {
        "pool": pool.name, "engine": "-", "feasible": False, "reason": "",
        "accelerator": pool.spec.accelerator.type if pool.spec.accelerator else "cpu",
        "tensor_parallel": 0, "threads": 0, "replicas_per_node": 0,
    }
    if pool.spec.is_gpu and not spec.placement.allow_gpu:
        return Candidate(**(base | {"reason": "GPU pools are not allowed "
                                              "(placement.allowGPU: false)"}))
    engines = engines_for(spec.model, pool)
    wanted = spec.placement.engine
    if wanted is not EngineChoice.AUTO:
        engines = [engine for engine in engines if engine == wanted.value]
    if not engines:
        kind = "GPU" if pool.spec.is_gpu else "CPU"
        engine_note = "" if wanted is EngineChoice.AUTO else f" with engine {wanted.value}"
        return Candidate(**(base | {"reason": f"no engine serves {spec.model.quantization.value} "
                                              f"weights on a {kind} pool{engine_note}"}))
    prompt, output, targets = context.prompt, context.output, context.targets
    best: dict[str, Any] | None = None
    best_score: tuple[float, ...] = ()
    closest: tuple[int, dict[str, Any]] | None = None  # the infeasible shape that got furthest
    by_cost = spec.objective in (Objective.COST, Objective.BALANCED)
    for engine in engines:
        for shape in shapes_for(spec.model, pool, engine, prompt + output):
            cost_to_beat = best["usd_per_hour"] if by_cost and best is not None else None
            stage, fields = _evaluate_shape(md, shape, base, targets, prompt, output,
                                            cost_to_beat)
            if stage == _OUTBID:
                if fields["replicas"] <= context.floor:
                    break
                continue
            if not fields["feasible"]:
                if closest is None or stage > closest[0]:
                    closest = (stage, fields)
                continue
            score = _score(fields, spec.objective)
            if best is None or score < best_score:
                best, best_score = fields, score
            if fields["replicas"] <= context.floor:
                break  # a bigger shape only costs more per replica and saves none
    if best is not None:
        return Candidate(**best)
    assert closest is not None
    stage, fields = closest
    perf = fields.get("performance")
    if stage == _MEETS_SLO and perf is not None:  # explained only when shown
        fields["reason"] = _slo_miss(perf, prompt, output, targets)
    return Candidate(**fields)


def _score(fields: dict[str, Any], objective: Objective) -> tuple[float, ...]:
    """Candidate.score on the not-yet-built candidate's fields."""
    cost = fields["usd_per_million_tokens"]
    energy = fields["joules_per_token"]
    carbon = fields["grams_co2_per_million_tokens"]
    if objective is Objective.ENERGY:
        return (energy, cost, carbon)
    if objective is Objective.CARBON:
        return (carbon, cost, energy)
    return (cost, energy, carbon)


# How far an infeasible shape got: the furthest one explains the pool best.
_FITS, _MEETS_SLO, _REPLICAS, _NODES, _BUDGET = range(5)
_OUTBID = -1  # feasible or not, it already costs more than a shape found before


def _evaluate_shape(md: ModelDeployment, shape: Shape, base: dict[str, Any], targets: Targets,
                    prompt: int, output: int,
                    cost_to_beat: float | None = None) -> tuple[int, dict[str, Any]]:
    """How far the shape got (a stage) and the fields of its candidate. With
    ``cost_to_beat`` ($/hour of the pool's best shape so far, when ranking by cost) a
    shape that already costs more is dropped before its energy is modelled (_OUTBID)."""
    spec = md.spec
    perf = shape.performance

    def start(**extra: Any) -> dict[str, Any]:
        fields: dict[str, Any] = base | {
            "engine": shape.engine, "tensor_parallel": shape.tensor_parallel,
            "threads": shape.threads, "replicas_per_node": shape.replicas_per_node,
            "cpu_request": shape.cpu_request, "memory_request_gib": shape.memory_request_gib,
            "cpu_request_millis": shape.cpu_request_millis or shape.cpu_request * 1000,
            "memory_gib": shape.memory.needed_gib, "performance": perf,
        }
        fields.update(extra)
        return fields

    if shape.problem is not None or perf is None:
        return _FITS, start(reason=shape.problem or "does not fit")
    capacity = capacity_rps(perf, prompt, output, targets)  # memoised
    if capacity <= 0:
        return _MEETS_SLO, start(reason="misses the SLO")
    rate = spec.expected_load.requests_per_second
    floor = max(1, spec.scaling.min_replicas)
    replicas = replicas_needed(perf, rate, prompt, output, targets, capacity, floor,
                               spec.scaling.max_replicas)
    if replicas is None:
        need = math.ceil(rate / capacity)
        return _REPLICAS, start(capacity_rps_per_replica=capacity,
                                reason=f"needs {need} replicas for {rate:g} req/s, "
                                       f"above maxReplicas {spec.scaling.max_replicas}")
    if cost_to_beat is not None and replicas * perf.usd_per_hour > cost_to_beat * (1 + 1e-9):
        return _OUTBID, {"replicas": replicas}  # only its replica count is looked at
    fields = start(capacity_rps_per_replica=capacity)
    econ = economics(perf, replicas, rate, prompt, output)
    nodes = math.ceil(replicas / max(1, shape.replicas_per_node))
    per_replica_tps = (perf.aggregate_tps_max if perf.max_concurrency > 1
                       else perf.decode_tps_single)
    fields.update(
        replicas=econ.replicas, nodes=nodes,
        predicted_p95_ms=econ.point.p95_latency_s * 1000,
        predicted_ttft_p95_ms=econ.point.p95_ttft_s * 1000,
        tokens_per_second_per_replica=per_replica_tps if output > 0 else perf.prefill_tps,
        usd_per_hour=econ.usd_per_hour,
        usd_per_million_tokens=econ.usd_per_million_tokens,
        joules_per_token=econ.joules_per_token,
        grams_co2_per_million_tokens=econ.grams_co2_per_million_tokens,
    )
    if nodes > shape.pool.spec.max_nodes:
        limit = shape.pool.spec.max_nodes
        return _NODES, _make(fields, reason=f"needs {nodes} nodes, pool maxNodes is {limit}")
    over = _over_budget(md.spec.budget, econ)
    if over:
        return _BUDGET, _make(fields, reason=over, over_budget=True)
    return _BUDGET + 1, _make(fields, feasible=True, reason="feasible")


def _with_reason(cand: Candidate, reason: str) -> Candidate:
    # a copy with one field changed, without re-running __init__ on every field
    copy = object.__new__(Candidate)
    copy.__dict__.update(cand.__dict__)
    copy.__dict__["reason"] = reason
    return copy


def _make(fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    fields.update(extra)
    return fields


def _slo_miss(perf: ReplicaPerformance, prompt: int, output: int, targets: Targets) -> str:
    idle = operating_point(perf, 1e-6, prompt, output)
    if idle.p95_latency_s > targets.latency_p95_s:
        return (f"misses the latency SLO even unloaded: p95 {idle.p95_latency_s * 1000:.0f} ms "
                f"> {targets.latency_p95_s * 1000:.0f} ms")
    if targets.ttft_p95_s is not None and idle.p95_ttft_s > targets.ttft_p95_s:
        return (f"misses the TTFT SLO even unloaded: p95 {idle.p95_ttft_s * 1000:.0f} ms "
                f"> {targets.ttft_p95_s * 1000:.0f} ms")
    return "cannot meet the SLO at the target utilization"


def _over_budget(budget: Budget, econ: Economics) -> str | None:
    checks = (
        (budget.max_joules_per_token, econ.joules_per_token, "J/token", "maxJoulesPerToken"),
        (budget.max_usd_per_million_tokens, econ.usd_per_million_tokens, "$/1M tokens",
         "maxUSDPerMillionTokens"),
        (budget.max_usd_per_hour, econ.usd_per_hour, "$/hour", "maxUSDPerHour"),
    )
    for limit, value, unit, field in checks:
        if limit is not None and value > limit:
            return f"over budget: {value:.3g} {unit} > budget.{field} {limit:g}"
    return None
