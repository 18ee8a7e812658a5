"""Placement engine (pure): memory, roofline performance, economics and the decision.

Public API::

    plan(md, pools) -> Plan            # Plan.chosen: Candidate | None, Plan.candidates
    Candidate.performance              # ReplicaPerformance of the pool's best shape
    operating_point(perf, rps, prompt_tokens, output_tokens) -> OperatingPoint
"""

from wattserve.planning.economics import Targets, capacity_rps
from wattserve.planning.performance import OperatingPoint, ReplicaPerformance, operating_point
from wattserve.planning.placement import Candidate, Plan, evaluate_pool, plan

__all__ = [
    "Candidate",
    "OperatingPoint",
    "Plan",
    "ReplicaPerformance",
    "Targets",
    "capacity_rps",
    "evaluate_pool",
    "operating_point",
    "plan",
]
