"""Sizing rules of the autoscaling policy (:mod:`.policy`): the latency thresholds a
replica count must meet to scale up or down, the smallest count meeting them, and HPA-style
stabilization of the recommendation. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable

from wattserve.autoscale.model import ScalingInputs
from wattserve.autoscale.queueing import Prediction


def thresholds(slo: float, floor: float, margin: float, tol: float) -> tuple[float, float]:
    """(scale-up, scale-down) latency thresholds: the margin (and, for scaling down, the
    tolerance) taken off the latency above the idle floor; never within the tolerance
    of the floor itself."""
    room = max(slo - floor, 0.0)
    up = max(floor + (1.0 - margin) * room, floor * (1.0 + tol))
    down = max(floor + (1.0 - margin) * (1.0 - tol) * room, floor * (1.0 + tol / 2))
    return up, down


def margin_thresholds(slo: float, floor: float, most: float, margin: float, tol: float
                      ) -> tuple[float, float]:
    """:func:`thresholds` above the idle ``floor``, relaxed towards the SLO when what the
    most replicas give (``most``) leaves less room above it than the idle floor does."""
    up, down = thresholds(slo, floor, margin, tol)
    if not math.isfinite(most) or most <= floor or most >= slo:
        return up, down
    up_most, down_most = thresholds(slo, most, margin, tol)
    up = max(up, min(up_most, slo))
    return up, max(down, min(down_most, up))


def smallest(
    pred: Callable[[int, float], Prediction], rate: float, lo: int, hi: int,
    lat_thr: float, ttft_thr: float | None, util_cap: float,
) -> int | None:
    for replicas in range(lo, hi + 1):
        p = pred(replicas, rate)
        if p.p95_s <= lat_thr and p.utilization <= util_cap and (
                ttft_thr is None or p.ttft_p95_s <= ttft_thr):
            return replicas
    return None


def stabilize(
    spec: ScalingInputs, recs: tuple[tuple[float, int], ...], rec: int, current: int,
    now: float, *, immediate_up: bool,
) -> int:
    if rec > current:
        if immediate_up or spec.scale_up_delay_s <= 0:
            target = rec
        else:
            target = max(current, min(r for t, r in recs if now - t < spec.scale_up_delay_s
                                      or t == now))
        base = max(current, 1)
        return min(target, max(2 * base, base + spec.max_scale_up_step))
    if rec < current:
        window = [r for t, r in recs if now - t < spec.scale_down_delay_s or t == now]
        return min(current, max(window))
    return current
