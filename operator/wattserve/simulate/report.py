"""Summaries of a simulation run: SLO attainment, latency percentiles, replica-hours,
dollars, kWh and gCO2, and their table / JSON forms."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from wattserve.simulate.engine import SimResult


@dataclass(frozen=True)
class Summary:
    policy: str
    setting: str
    requests: int
    slo_attainment: float  # share of requests in minutes whose p95 met the SLO
    within_slo: float  # share of requests individually faster than the SLO
    p50_s: float
    p95_s: float
    p99_s: float
    replica_hours: float
    usd: float
    kwh: float
    grams_co2: float
    peak_replicas: int
    minutes_violated: int
    cold_starts: int = 0  # scale-ups from zero replicas
    held_requests: int = 0  # requests held at the router (no replica ready)
    hold_mean_s: float = 0.0  # mean hold of the held requests
    hold_max_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def minute_p95s(result: SimResult, window_s: float = 60.0
                ) -> dict[int, tuple[int, float, float]]:
    """Per arrival minute: (requests, p95 latency, p95 TTFT)."""
    by_minute: dict[int, list[tuple[float, float]]] = {}
    for r in result.requests:
        by_minute.setdefault(int(r.arrival // window_s), []).append(
            (r.finish - r.arrival, r.first_token - r.arrival))
    return {k: (len(pairs), percentile(sorted(p[0] for p in pairs), 0.95),
                percentile(sorted(p[1] for p in pairs), 0.95))
            for k, pairs in by_minute.items()}


def minute_ok(p95: float, ttft95: float, slo_s: float, ttft_slo_s: float | None) -> bool:
    return p95 <= slo_s and (ttft_slo_s is None or ttft95 <= ttft_slo_s)


def minute_attainment(result: SimResult, slo_s: float, ttft_slo_s: float | None = None,
                      window_s: float = 60.0) -> tuple[float, int]:
    """Request-weighted share of arrival minutes whose p95 latency (and p95 TTFT, when the
    SLO has one) is within the SLO. Returns (attainment, minutes violated)."""
    good = total = violated = 0
    for n, p95, ttft95 in minute_p95s(result, window_s).values():
        total += n
        if minute_ok(p95, ttft95, slo_s, ttft_slo_s):
            good += n
        else:
            violated += 1
    return (good / total if total else 1.0), violated


def summarize(result: SimResult, slo_s: float, ttft_slo_s: float | None = None,
              setting: str = "") -> Summary:
    lat = sorted(r.finish - r.arrival for r in result.requests)
    attain, violated = minute_attainment(result, slo_s, ttft_slo_s)
    hours = sum(((rep.stopped_at if rep.stopped_at is not None else result.end_s)
                 - rep.requested_at) for rep in result.replicas) / 3600.0
    kwh = sum(rep.energy_j for rep in result.replicas) / 3.6e6
    peak = max((s.replicas for s in result.samples), default=0)
    holds = [r.held_s for r in result.requests if r.held_s > 0]
    return Summary(
        policy=result.policy, setting=setting, requests=len(lat),
        slo_attainment=attain,
        within_slo=(sum(1 for x in lat if x <= slo_s) / len(lat)) if lat else 1.0,
        p50_s=percentile(lat, 0.5), p95_s=percentile(lat, 0.95), p99_s=percentile(lat, 0.99),
        replica_hours=hours, usd=hours * result.perf.usd_per_hour, kwh=kwh,
        grams_co2=kwh * result.perf.grams_co2_per_kwh, peak_replicas=peak,
        minutes_violated=violated, cold_starts=result.cold_starts,
        held_requests=len(holds), hold_mean_s=(sum(holds) / len(holds)) if holds else 0.0,
        hold_max_s=max(holds, default=0.0),
    )


_COLUMNS = (
    ("policy", "{}"), ("setting", "{}"), ("slo_attainment", "{:.2%}"),
    ("within_slo", "{:.1%}"), ("p50_s", "{:.2f}"), ("p95_s", "{:.2f}"), ("p99_s", "{:.2f}"),
    ("replica_hours", "{:.2f}"), ("usd", "{:.2f}"), ("kwh", "{:.3f}"),
    ("grams_co2", "{:.0f}"), ("peak_replicas", "{}"),
)


_ZERO_COLUMNS = (("cold_starts", "{}"), ("held_requests", "{}"), ("hold_max_s", "{:.1f}"))


def table(rows: list[Summary], markdown: bool = False) -> str:
    """Rows as a table; the scale-to-zero columns appear when any run held requests."""
    cols = _COLUMNS + (_ZERO_COLUMNS if any(r.cold_starts or r.held_requests for r in rows)
                       else ())
    header = [c for c, _ in cols]
    body = [[fmt.format(getattr(r, c)) for c, fmt in cols] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(out)
