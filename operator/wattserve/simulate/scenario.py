"""From a ModelDeployment, pools and a trace to ready-to-run policies.

The spec -> :class:`ScalingInputs` adapter (``scaling_inputs``) is the autoscaler's
(:mod:`wattserve.autoscale.inputs`); the simulator uses it like the operator does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattserve.api import (
    ModelDeployment,
    ServingPool,
    load_yaml_documents,
    parse_each,
    parse_model_deployment,
    parse_serving_pool,
    read_manifest,
    require_type_meta,
)
from wattserve.autoscale.inputs import capacity_of, scaling_inputs
from wattserve.autoscale.performance import PerformanceModel
from wattserve.planning.economics import Targets
from wattserve.simulate.trace import TraceRequest

__all__ = ["Scenario", "capacity_of", "initial_replicas", "load_model", "load_pools",
           "peak_replicas", "place", "replicas_for_rate", "scaling_inputs", "targets_of"]


@dataclass(frozen=True)
class Scenario:
    md: ModelDeployment
    perf: PerformanceModel
    pool: str
    trace: Sequence[TraceRequest]
    idle_timeout_s: float | None = None  # minReplicas 0: idle timeout (None: default)

    @property
    def slo_s(self) -> float:
        return self.md.spec.slo.latency_p95_ms / 1000.0

    @property
    def ttft_slo_s(self) -> float | None:
        ttft = self.md.spec.slo.ttft_p95_ms
        return None if ttft is None else ttft / 1000.0

    @property
    def max_replicas(self) -> int:
        return self.md.spec.scaling.max_replicas

    @property
    def min_replicas(self) -> int:
        return max(1, self.md.spec.scaling.min_replicas)

    @property
    def allows_zero(self) -> bool:
        """minReplicas 0: policies that can scale to zero may (requests wait for a cold
        start at the router)."""
        return self.md.spec.scaling.min_replicas == 0


KNOWN_KINDS = ("ModelDeployment", "ServingPool")


def _documents(path: str | Path) -> list[dict[str, Any]]:
    """The file's objects; a kind that is neither of ours (a typo such as ``ServingPoool``)
    is an error naming its document, not a document silently left out."""
    docs = load_yaml_documents(read_manifest(path), str(path))
    require_type_meta(docs, str(path))
    for index, doc in enumerate(docs):
        if doc.get("kind") not in KNOWN_KINDS:
            raise ValueError(f"{path}: document {index + 1}: kind: expected ModelDeployment "
                             f"or ServingPool, got {doc.get('kind')!r}")
    return docs


def load_model(path: str | Path) -> ModelDeployment:
    docs = _documents(path)
    count = sum(d.get("kind") == "ModelDeployment" for d in docs)
    if not count:
        raise ValueError(f"{path}: no ModelDeployment document")
    if count > 1:
        raise ValueError(f"{path}: {count} ModelDeployment documents; a simulation "
                         "replays one (split the file)")
    return parse_each(docs, str(path), parse_model_deployment, "ModelDeployment")[0]


def load_pools(path: str | Path) -> list[ServingPool]:
    docs = _documents(path)
    pools = parse_each(docs, str(path), parse_serving_pool, "ServingPool")
    if not pools:
        raise ValueError(f"{path}: no ServingPool document")
    seen: set[str] = set()
    for pool in pools:
        if pool.name in seen:  # one object per name in a cluster: refused, as plan does
            raise ValueError(f"{path}: ServingPool {pool.name!r} is defined twice; the API "
                             "server keeps one object per name: remove or rename one")
        seen.add(pool.name)
    return pools


def place(md: ModelDeployment, pools: Sequence[ServingPool]) -> tuple[str, PerformanceModel]:
    """The placement engine's choice and its replica performance."""
    from wattserve.planning import plan

    result = plan(md, pools)
    chosen = result.chosen
    if chosen is None or chosen.performance is None:
        raise ValueError(f"no feasible placement for {md.name}: {result.reason}")
    return chosen.pool, chosen.performance


def replicas_for_rate(perf: PerformanceModel, rate: float, prompt: float, gen: float,
                      targets: Targets, max_replicas: int) -> int:
    """The placement engine's answer: fewest replicas whose operating point meets the
    SLO and utilization target at ``rate`` (the common starting point of every dynamic
    policy, and static provisioning for the peak)."""
    from wattserve.planning import ReplicaPerformance, operating_point

    for n in range(1, max_replicas + 1):
        if isinstance(perf, ReplicaPerformance):
            if targets.met_by(operating_point(perf, rate / n, round(prompt), round(gen))):
                return n
        else:
            service = prompt / perf.prefill_tps + gen / perf.decode_tps_single
            if rate / n * service < targets.max_utilization * perf.max_concurrency:
                return n
    return max_replicas


def targets_of(scn: Scenario) -> Targets:
    return Targets(scn.slo_s, scn.ttft_slo_s,
                   scn.md.spec.scaling.target_utilization_percent / 100.0)


def initial_replicas(scn: Scenario, head_s: float = 300.0) -> int:
    """Common starting point for every dynamic policy: what the placement engine would
    deploy for 1.5 x the busiest minute of the first five (a cautious start, so that no
    policy's first minutes depend on how the trace happens to begin)."""
    head = [r for r in scn.trace if r.arrival_s < head_s]
    if not head:
        return scn.min_replicas
    per_minute: dict[int, int] = {}
    for r in head:
        per_minute[int(r.arrival_s // 60)] = per_minute.get(int(r.arrival_s // 60), 0) + 1
    rate = 1.5 * max(per_minute.values()) / 60.0
    prompt = sum(r.prompt_tokens for r in head) / len(head)
    gen = sum(r.gen_tokens for r in head) / len(head)
    n = replicas_for_rate(scn.perf, rate, prompt, gen, targets_of(scn), scn.max_replicas)
    return max(scn.min_replicas, n)


def peak_replicas(scn: Scenario, bucket_s: float = 60.0) -> int:
    """Static provisioning for the peak one-minute rate."""
    counts: dict[int, list[TraceRequest]] = {}
    for r in scn.trace:
        counts.setdefault(int(r.arrival_s // bucket_s), []).append(r)
    if not counts:
        return scn.min_replicas
    busiest = max(counts.values(), key=len)
    rate = len(busiest) / bucket_s
    prompt = sum(r.prompt_tokens for r in scn.trace) / len(scn.trace)
    gen = sum(r.gen_tokens for r in scn.trace) / len(scn.trace)
    return max(scn.min_replicas, replicas_for_rate(scn.perf, rate, prompt, gen,
                                                   targets_of(scn), scn.max_replicas))
