"""Run policies on a scenario, and tune each baseline's target so none is handicapped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from wattserve.api import Objective
from wattserve.autoscale.idle import IdleDecision
from wattserve.simulate.baselines import HpaPolicy, RayServePolicy, StaticPolicy
from wattserve.simulate.engine import Policy, SimResult, Simulation
from wattserve.simulate.oracle import OracleInputs, oracle
from wattserve.simulate.report import Summary, summarize
from wattserve.simulate.scenario import (
    Scenario,
    initial_replicas,
    peak_replicas,
    scaling_inputs,
)
from wattserve.simulate.wattserve_policy import WattservePolicy

POLICIES = ("wattserve", "hpa", "rayserve", "static", "oracle")
ATTAINMENT_GOAL = 0.99
HPA_TARGETS = (0.5, 0.6, 0.7, 0.8)  # CPU utilization targets swept
# target_ongoing_requests swept: the documented 1-8, plus 0.5 and 0.75, which one-at-a-time
# (llama.cpp) replicas need to keep any headroom.
RAY_TARGETS = (0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


@dataclass(frozen=True)
class Run:
    summary: Summary
    result: SimResult
    idle: IdleDecision | None = None  # wattserve at minReplicas 0: its last idle timeout


def make_policy(name: str, scn: Scenario, setting: float | None = None) -> Policy:
    lo, hi = scn.min_replicas, scn.max_replicas
    if name == "static":
        return StaticPolicy(int(setting) if setting is not None else peak_replicas(scn))
    start = initial_replicas(scn)
    if name == "hpa":
        target = setting if setting is not None else (
            scn.md.spec.scaling.target_utilization_percent / 100.0)
        return HpaPolicy(target, min_replicas=lo, max_replicas=hi, initial_replicas=start)
    if name == "rayserve":
        return RayServePolicy(setting if setting is not None else 2.0, min_replicas=lo,
                              max_replicas=hi, initial_replicas=start)
    if name == "wattserve":
        # A fixed idle timeout: the run's override, else the spec's (as the operator reads it).
        fixed = scn.idle_timeout_s
        if fixed is None and scn.md.spec.scaling.idle_timeout_seconds is not None:
            fixed = float(scn.md.spec.scaling.idle_timeout_seconds)
        return WattservePolicy(scaling_inputs(scn.md, scn.perf), initial_replicas=start,
                               idle_timeout_s=fixed)
    raise ValueError(f"unknown policy {name!r}; one of {', '.join(POLICIES)}")


def setting_label(name: str, setting: float | None, policy: Policy) -> str:
    if name == "hpa" and isinstance(policy, HpaPolicy):
        return f"cpu {policy.target_utilization:.0%}"
    if name == "rayserve" and isinstance(policy, RayServePolicy):
        return f"ongoing {policy.target_ongoing_requests:g}"
    if name == "static" and isinstance(policy, StaticPolicy):
        return f"{policy.replicas} replicas"
    return "default"


def run_policy(scn: Scenario, name: str, setting: float | None = None,
               progress: Callable[[str], None] | None = None) -> Run:
    if name == "oracle":
        return run_oracle(scn, progress)
    policy = make_policy(name, scn, setting)
    result = Simulation(scn.trace, scn.perf, policy).run()
    summary = summarize(result, scn.slo_s, scn.ttft_slo_s,
                        setting=setting_label(name, setting, policy))
    idle = policy.idle_decisions[-1] if (
        isinstance(policy, WattservePolicy) and policy.idle_decisions) else None
    return Run(summary, result, idle)


def oracle_inputs(scn: Scenario) -> OracleInputs:
    return OracleInputs(scn.trace, scn.perf, scn.slo_s, scn.ttft_slo_s,
                        0 if scn.allows_zero else scn.min_replicas, scn.max_replicas)


def run_oracle(scn: Scenario, progress: Callable[[str], None] | None = None) -> Run:
    """The hindsight oracle (:mod:`wattserve.simulate.oracle`) as a run."""
    found = oracle(oracle_inputs(scn), static=lambda n: run_policy(scn, "static", n).result,
                   say=progress)
    summary = summarize(found.result, scn.slo_s, scn.ttft_slo_s,
                        setting=f"hindsight ({found.source})")
    return Run(summary, found.result)


def cheapest(runs: list[Run]) -> Run | None:
    """The cheapest run (replica-hours, then kWh) that reaches the attainment goal."""
    ok = [r for r in runs if r.summary.slo_attainment >= ATTAINMENT_GOAL]
    return min(ok, key=lambda r: (r.summary.replica_hours, r.summary.kwh), default=None)


def sweep_policy(scn: Scenario, name: str,
                 progress: Callable[[str], None] | None = None) -> tuple[list[Run], Run | None]:
    """All settings tried for ``name`` and the cheapest one reaching 99 % attainment."""
    say = progress or (lambda _msg: None)
    runs: list[Run] = []
    if name == "static":  # attainment grows with replicas: bisect the smallest passing count
        lo, hi = scn.min_replicas, scn.max_replicas
        cache: dict[int, Run] = {}
        while lo < hi:
            mid = (lo + hi) // 2
            cache[mid] = run_policy(scn, "static", mid)
            say(_line(cache[mid]))
            if cache[mid].summary.slo_attainment >= ATTAINMENT_GOAL:
                hi = mid
            else:
                lo = mid + 1
        if lo not in cache:
            cache[lo] = run_policy(scn, "static", lo)
            say(_line(cache[lo]))
        runs = [cache[k] for k in sorted(cache)]
        return runs, cheapest(runs)
    settings: tuple[float | None, ...] = {
        "hpa": HPA_TARGETS, "rayserve": RAY_TARGETS,
    }.get(name, (None,))
    for setting in settings:
        run = run_policy(scn, name, setting, progress)
        say(_line(run))
        runs.append(run)
    return runs, cheapest(runs)


def _line(run: Run) -> str:
    s = run.summary
    return (f"  {s.policy:<9} {s.setting:<13} attainment {s.slo_attainment:7.2%}  "
            f"p95 {s.p95_s:6.2f}s  replica-h {s.replica_hours:7.2f}  kWh {s.kwh:7.3f}")


def with_overrides(scn: Scenario, *, max_replicas: int | None = None,
                   latency_p95_ms: int | None = None, objective: str | None = None,
                   min_replicas: int | None = None) -> Scenario:
    """The same scenario with ``maxReplicas``, the p95 SLO and/or the objective
    overridden (benchmarks)."""
    spec = scn.md.spec
    if objective is not None:
        spec = replace(spec, objective=Objective(objective))
    if max_replicas is not None:
        spec = replace(spec, scaling=replace(spec.scaling, max_replicas=max_replicas))
    if min_replicas is not None:
        spec = replace(spec, scaling=replace(spec.scaling, min_replicas=min_replicas))
    if latency_p95_ms is not None:
        spec = replace(spec, slo=replace(spec.slo, latency_p95_ms=latency_p95_ms))
    return replace(scn, md=replace(scn.md, spec=spec))
