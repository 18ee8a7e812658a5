"""The live metrics one autoscaling decision sees (:class:`Observation`) and the thin,
impure edge that collects them from Prometheus (:func:`collect`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from wattserve.autoscale.prometheus import InstantQuery
from wattserve.autoscale.promql import DeploymentQueries, EnergySource


@dataclass(frozen=True)
class Observation:
    """Deployment-wide metrics over the query window; None = no usable data."""

    request_rate: float | None = None  # requests/s
    p95_latency_s: float | None = None  # end-to-end
    p95_ttft_s: float | None = None
    prompt_tps: float | None = None  # prompt tokens/s
    generation_tps: float | None = None  # generated tokens/s
    in_flight: float | None = None  # sequences being served now (all pods)
    queued: float | None = None  # requests waiting for a slot now (all pods)
    joules_per_token: float | None = None
    energy_source: str | None = None
    busy: float | None = None  # sequences in the servers on average over the window

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(client: InstantQuery, queries: DeploymentQueries) -> Observation:
    """One instant query per field; energy from the first source that answers."""
    rate = client.query_value(queries.request_rate)
    prompt = client.query_value(queries.prompt_tps)
    gen = client.query_value(queries.generation_tps)
    watts: float | None = None
    source: str | None = None
    for candidate in queries.energy_preference:
        expr = queries.energy_watts.get(candidate)
        if expr is None:
            continue
        value = client.query_value(expr)
        if value is not None and value >= 0:
            watts, source = value, EnergySource(candidate).value
            break
    return Observation(
        request_rate=rate,
        p95_latency_s=client.query_value(queries.p95_latency),
        p95_ttft_s=client.query_value(queries.p95_ttft),
        prompt_tps=prompt,
        generation_tps=gen,
        in_flight=client.query_value(queries.in_flight),
        busy=client.query_value(queries.busy),
        queued=client.query_value(queries.queued),
        joules_per_token=joules_per_token(watts, prompt, gen),
        energy_source=source,
    )


def joules_per_token(
    watts: float | None, prompt_tps: float | None, generation_tps: float | None
) -> float | None:
    """Energy rate (J/s) over generated tokens/s; None when either side is unknown or 0.

    Per *generated* token: prompt tokens are cheap (batched prefill) and counting them
    would make long-prompt traffic look efficient. ``prompt_tps`` is accepted so callers
    can switch definitions in one place; it is unused today.
    """
    del prompt_tps
    if watts is None or generation_tps is None:
        return None
    if not (math.isfinite(watts) and math.isfinite(generation_tps)) or generation_tps <= 0:
        return None
    return watts / generation_tps
