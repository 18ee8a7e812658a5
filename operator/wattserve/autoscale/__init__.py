"""wattserve.autoscale: latency-SLO and energy-aware scaling from Prometheus metrics.

``decide(spec, state, obs, now) -> (Decision, ScalerState)`` is the pure policy;
``PrometheusClient`` + ``render(QueryTemplates(), ns, name)`` + ``collect`` produce the
``Observation`` it reads. ``idle_timeout(IdleInputs) -> IdleDecision``: how long an idle
replica stays warm with ``minReplicas: 0`` (docs/activator.md). See docs/autoscaling.md.
"""

from wattserve.autoscale.idle import IdleDecision, IdleInputs, idle_timeout
from wattserve.autoscale.model import Decision, Goal, Reason, ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation, collect
from wattserve.autoscale.policy import decide
from wattserve.autoscale.prometheus import PrometheusClient
from wattserve.autoscale.promql import EnergySource, QueryTemplates, render
from wattserve.autoscale.queueing import Capacity, Load, predict

__all__ = [
    "Capacity",
    "Decision",
    "EnergySource",
    "Goal",
    "IdleDecision",
    "IdleInputs",
    "Load",
    "Observation",
    "PrometheusClient",
    "QueryTemplates",
    "Reason",
    "ScalerState",
    "ScalingInputs",
    "collect",
    "decide",
    "idle_timeout",
    "predict",
    "render",
]
