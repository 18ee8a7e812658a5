"""The plan as plain data: the `status.placement` shape of the CRD (camelCase, decimals
as strings), shared by `wattserve plan -o json|yaml` and the operator's status."""

from __future__ import annotations

import math
from typing import Any

from wattserve.planning.placement import Candidate, Plan


def decimal_string(value: float, digits: int = 4) -> str:
    """A float as a short decimal string ("inf" for unbounded values)."""
    if math.isinf(value) or math.isnan(value):
        return "inf"
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text:  # no exponents in status: write the plain decimal
        text = f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"
    return text


def _figures(cand: Candidate) -> dict[str, Any]:
    """The predicted figures of a placed candidate, decimals as strings."""
    return {
        "replicas": cand.replicas,
        "predictedP95Ms": decimal_string(cand.predicted_p95_ms),
        "tokensPerSecondPerReplica": decimal_string(cand.tokens_per_second_per_replica),
        "usdPerHour": decimal_string(cand.usd_per_hour),
        "usdPerMillionTokens": decimal_string(cand.usd_per_million_tokens),
        "joulesPerToken": decimal_string(cand.joules_per_token),
        "gramsCO2PerMillionTokens": decimal_string(cand.grams_co2_per_million_tokens),
    }


def candidate_summary(cand: Candidate) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pool": cand.pool,
        "engine": cand.engine,
        "accelerator": cand.accelerator,
        "feasible": cand.feasible,
        "reason": cand.reason,
    }
    if cand.replicas:
        out.update(_figures(cand))
    return out


def placement_summary(plan: Plan) -> dict[str, Any]:
    """`status.placement`: the choice (if any), its reason, and every candidate."""
    out: dict[str, Any] = {"reason": plan.reason}
    chosen = plan.chosen
    if chosen is not None:
        out.update(
            pool=chosen.pool,
            engine=chosen.engine,
            accelerator=chosen.accelerator,
            tensorParallel=chosen.tensor_parallel,
            threads=chosen.threads,
            replicasPerNode=chosen.replicas_per_node,
            nodes=chosen.nodes,
            cpuRequest=chosen.cpu_request,
            cpuRequestMillis=chosen.cpu_millis,
            memoryRequestGiB=chosen.memory_request_gib,
            predictedTTFTP95Ms=decimal_string(chosen.predicted_ttft_p95_ms),
            capacityRPSPerReplica=decimal_string(chosen.capacity_rps_per_replica),
            **_figures(chosen),
        )
    out["candidates"] = [candidate_summary(cand) for cand in plan.candidates]
    return out
