"""`wattserve plan` for a fleet (several models): the greedy placement the operator makes,
everything on GPU pools, and the exact optimum (ILP), side by side."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from wattserve.api import ModelDeployment, Objective, ServingPool, SpecError
from wattserve.api.reader import Fields
from wattserve.cli.table import render_table
from wattserve.planning import optimum, refine
from wattserve.planning.capacity import Ledger, Resources, replica_request, shape_capacity
from wattserve.planning.constants import TENSOR_PARALLEL_OPTIONS
from wattserve.planning.fleet import (
    Assignment,
    Key,
    Member,
    Totals,
    assign,
    candidate_rates,
    fleet_plan,
    members_of,
    totals,
)
from wattserve.planning.summary import decimal_string, placement_summary


@dataclass(frozen=True)
class Row:
    name: str
    totals: Totals
    seconds: float
    note: str = ""


MAX_INCUMBENT_REPLICAS = 1000  # spec.scaling.maxReplicas' bound in the CRD


class IncumbentError(ValueError):
    """A previous plan (--incumbent) that cannot be read; the message names the field."""


_ANY: frozenset[str] = frozenset()  # Fields(strict=False): other keys are the plan's own


# A request's bounds: Kubernetes' smallest quantities (1m CPU, 1 KiB) to far past any node.
_CPU_RANGE = (0.001, 1e5)
_MEMORY_GIB_RANGE = (2.0**-20, 1e7)


def _positive(value: object, path: str, bounds: tuple[float, float]) -> float:
    """A finite number within ``bounds`` (an integer or a float, not a boolean nor a
    string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(path, "must be a number, got " + ("nothing" if value is None
                                                            else type(value).__name__))
    number = float(value)
    low, high = bounds
    if not (math.isfinite(number) and low <= number <= high):
        raise SpecError(path, f"must be between {low:g} and {high:g}, got {value:.6g}")
    return number


def incumbent_of(payload: object, members: list[Member],
                 pools: list[ServingPool]) -> dict[Key, Assignment]:
    """The placements of a previous `wattserve plan -o json|yaml` fleet output, as
    assignments on the members' current plans (a model or pool no longer there, or no
    longer feasible, is taken as unplaced)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("models"), list):
        raise IncumbentError("models: missing (not a `wattserve plan -o json` fleet output)")
    by_key = {member.key: member for member in members}
    gpu = {pool.name for pool in pools if pool.spec.is_gpu}
    out: dict[Key, Assignment] = {}
    for index, item in enumerate(payload["models"]):
        where = f"models[{index}]"
        if not isinstance(item, dict):
            raise IncumbentError(f"{where}: not a mapping")
        fleet, placement = item.get("fleet") or {}, item.get("placement") or {}
        for name, part in (("fleet", fleet), ("placement", placement)):
            if not isinstance(part, dict):
                raise IncumbentError(f"{where}.{name}: not a mapping")
        if not isinstance(fleet.get("pool", ""), str):
            raise IncumbentError(f"{where}.fleet.pool: not a pool name")
        for field in ("namespace", "modelDeployment"):
            if not isinstance(item.get(field, ""), str):
                raise IncumbentError(f"{where}.{field}: not a name")
        key = (str(item.get("namespace", "")), str(item.get("modelDeployment", "")))
        if key in out:
            raise IncumbentError(f"{where}: {key[0]}/{key[1]} is listed twice")
        member = by_key.get(key)
        pool = fleet.get("pool") if isinstance(fleet, dict) else None
        if member is None or pool is None:
            continue
        try:
            replicas = Fields(fleet, f"{where}.fleet", allowed=_ANY, strict=False).req_integer(
                "replicas", minimum=1, maximum=MAX_INCUMBENT_REPLICAS)
            shape = Fields(placement, f"{where}.placement", allowed=_ANY, strict=False)
            tensor_parallel = shape.int_default("tensorParallel", 0, minimum=0,
                                                maximum=max(TENSOR_PARALLEL_OPTIONS))
            cpu = _positive(shape.raw("cpuRequest"), shape.at("cpuRequest"), _CPU_RANGE)
            memory = _positive(shape.raw("memoryRequestGiB"), shape.at("memoryRequestGiB"),
                               _MEMORY_GIB_RANGE)
        except SpecError as exc:
            raise IncumbentError(str(exc)) from None
        cand = next((c for c in member.plan.candidates if c.pool == pool and c.feasible), None)
        if cand is None:
            continue
        request = Resources(cpu, memory, (tensor_parallel or 1) if pool in gpu else 0)
        out[key] = Assignment(key, cand, "", request=request, replicas=replicas)
    return out


def plan_fleet(models: list[ModelDeployment], pools: list[ServingPool], *,
               objective: Objective, with_optimum: bool, time_limit_s: float,
               incumbent: object = None,
               ) -> tuple[list[Member], dict[Any, Assignment], list[Row]]:
    """``incumbent``: a previous plan's output (--incumbent); the fleet is then re-planned
    from it and never costs more than it while it still fits (see fleet.replan)."""
    _progress(f"planning {len(models)} models on {len(pools)} pools …")
    started = time.perf_counter()
    members = members_of(models, pools)
    rows = []
    if incumbent is None:
        greedy = refine.place(members, pools)
        name, note = "wattserve", ("per-model evaluation + fleet assignment (greedy, then the "
                                   "exact ILP within 0.3 s where it is better)")
    else:
        before = incumbent_of(incumbent, members, pools)
        rows.append(Row("incumbent (--incumbent)",
                        totals(members, {k: a.candidate for k, a in before.items()}), 0.0,
                        "the previous plan, costed with today's figures"))
        greedy = refine.replan(members, pools, None, before, objective)
        name, note = "wattserve (from incumbent)", "better of: incumbent improved, fresh greedy"
    greedy_s = time.perf_counter() - started
    rows.insert(0, Row(name, totals(members, {k: a.candidate for k, a in greedy.items()}),
                       greedy_s, note))
    gpu_pools = [pool for pool in pools if pool.spec.is_gpu]
    started = time.perf_counter()
    on_gpu = assign(members, gpu_pools)
    rows.append(Row("everything on GPU",
                    totals(members, {k: a.candidate for k, a in on_gpu.items()}),
                    time.perf_counter() - started, "greedy over the GPU pools only"))
    if with_optimum:
        if not optimum.available():
            print(f"wattserve plan: {optimum.MISSING_SCIPY}", file=sys.stderr)
        else:
            _progress(f"solving the fleet ILP (HiGHS, at most {time_limit_s:g} s) …")
            best = optimum.solve(members, pools, objective=objective,
                                 time_limit_s=time_limit_s)
            gap = "" if best.gap is None else f", gap {best.gap:.2%}"
            rows.append(Row("optimum (ILP)", best.totals, best.seconds,
                            f"{best.status}{gap}; node packing relaxed: a lower bound"))
    return members, greedy, rows


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        print(text, file=sys.stderr, flush=True)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.3f}" if base > 0 else "-"


def comparison(rows: list[Row], objective: Objective) -> list[dict[str, Any]]:
    base = next((r.totals for r in rows if r.name.startswith("optimum")), None)
    out = []
    for row in rows:
        item: dict[str, Any] = {
            "placement": row.name, "placed": row.totals.placed,
            "unplaced": row.totals.unplaced,
            "usdPerHour": decimal_string(row.totals.usd_per_hour),
            "kW": decimal_string(row.totals.watts / 1000),
            "gramsCO2PerHour": decimal_string(row.totals.grams_co2_per_hour),
            "seconds": decimal_string(row.seconds, 3), "note": row.note,
        }
        if base is not None:
            item["vsOptimum"] = _ratio(row.totals.objective(objective), base.objective(objective))
        out.append(item)
    return out


def data(members: list[Member], greedy: dict[Any, Assignment], rows: list[Row],
         pools: list[ServingPool], objective: Objective) -> dict[str, Any]:
    models = []
    for member in members:
        got = greedy[member.key]
        item: dict[str, Any] = {"modelDeployment": member.md.name,
                                "namespace": member.md.namespace,
                                "objective": member.md.spec.objective.value,
                                "placement": placement_summary(fleet_plan(member, got))}
        if got.candidate is not None:
            usd, watts, grams = candidate_rates(member.md, got.candidate)
            item["fleet"] = {"pool": got.candidate.pool, "replicas": got.replicas,
                             "usdPerHour": decimal_string(usd), "watts": decimal_string(watts),
                             "gramsCO2PerHour": decimal_string(grams)}
            if got.spilled_from:
                item["fleet"]["spilledFrom"] = got.spilled_from
        else:
            item["fleet"] = {"notPlaced": "PoolsFull" if got.full else "NoFeasiblePool"}
        models.append(item)
    return {"objective": objective.value, "models": models,
            "pools": _pool_usage(members, greedy, pools),
            "fleet": comparison(rows, objective)}


def _pool_usage(members: list[Member], greedy: dict[Any, Assignment],
                pools: list[ServingPool]) -> list[dict[str, Any]]:
    books = {pool.name: Ledger(shape_capacity(pool)) for pool in pools}
    by_name = {pool.name: pool for pool in pools}
    for member in members:
        got = greedy[member.key]
        if got.candidate is not None:
            books[got.candidate.pool].force(
                replica_request(got.candidate, by_name[got.candidate.pool]), got.replicas)
    return [{"pool": name, "capacity": book.capacity.source, "committed": book.usage()}
            for name, book in sorted(books.items())]


def table(payload: dict[str, Any]) -> str:
    models = render_table(
        ["MODEL", "POOL", "ENGINE", "REPLICAS", "$/HOUR", "WATTS", "gCO2/H", "REASON"],
        [[m["modelDeployment"], m["placement"].get("pool", "-"),
          m["placement"].get("engine", "-"), str(m["fleet"].get("replicas", "-")),
          m["fleet"].get("usdPerHour", "-"), m["fleet"].get("watts", "-"),
          m["fleet"].get("gramsCO2PerHour", "-"), m["placement"]["reason"]]
         for m in payload["models"]],
        max_width=90)
    pools = render_table(["POOL", "CAPACITY FROM", "COMMITTED"],
                         [[p["pool"], p["capacity"], p["committed"]] for p in payload["pools"]])
    has_opt = any("vsOptimum" in row for row in payload["fleet"])
    headers = ["FLEET PLACEMENT", "PLACED", "UNPLACED", "$/HOUR", "kW", "gCO2/HOUR"]
    headers += [f"{payload['objective'].upper()} VS OPTIMUM"] if has_opt else []
    headers += ["SECONDS", "NOTE"]
    fleet = render_table(
        headers,
        [[r["placement"], str(r["placed"]), str(r["unplaced"]), r["usdPerHour"], r["kW"],
          r["gramsCO2PerHour"], *([r["vsOptimum"]] if has_opt else []), r["seconds"],
          r["note"]] for r in payload["fleet"]], max_width=70)
    return f"{models}\n\n{pools}\n\n{fleet}"
