"""wattserve's policy in the simulator: Prometheus-like observations -> ``decide``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from wattserve import contract
from wattserve.autoscale.idle import IdleDecision, idle_timeout, inputs_for
from wattserve.autoscale.idleclock import active_rate_after, advance, idle_floor_s
from wattserve.autoscale.model import ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide
from wattserve.simulate.engine import ClusterView


def histogram_quantile(q: float, values: list[float],
                       buckets: tuple[float, ...] = contract.LATENCY_BUCKETS_SECONDS
                       ) -> float | None:
    """What Prometheus' ``histogram_quantile`` returns for these observations: linear
    interpolation inside the bucket holding the q-quantile (lower bound 0 for the first
    bucket, the last finite bound when the quantile falls into +Inf)."""
    if not values:
        return None
    counts = [0] * (len(buckets) + 1)
    for v in values:
        lo, hi = 0, len(buckets)
        while lo < hi:  # first bucket with bound >= v
            mid = (lo + hi) // 2
            if buckets[mid] >= v:
                hi = mid
            else:
                lo = mid + 1
        counts[lo] += 1
    rank = q * len(values)
    cum = 0
    for i, c in enumerate(counts):
        if cum + c >= rank and c > 0:
            if i == len(buckets):
                return buckets[-1]
            lower = 0.0 if i == 0 else buckets[i - 1]
            return lower + (buckets[i] - lower) * (rank - cum) / c
        cum += c
    return buckets[-1]


def observe(view: ClusterView, window_s: float, energy: deque[tuple[float, float]]
            ) -> Observation:
    """The Observation wattserve's PromQL would return at ``view.now``: every series as of
    Prometheus's last scrape of the pods (up to a scrape interval old), rates and
    quantiles over the window that ends there."""
    end = view.scraped_at
    done = view.completions(window_s, until=end)
    span = min(window_s, max(end, 1e-9))
    rate = len(done) / span
    gen = sum(c.gen for c in done) / span
    jpt = None
    if len(energy) >= 2 and gen > 0:
        (t0, e0), (t1, e1) = energy[0], energy[-1]
        if t1 > t0:
            jpt = (e1 - e0) / (t1 - t0) / gen
    in_flight, queued = view.scraped()
    # The serving app's histograms start when a replica takes the request: time held by
    # the activator during a cold start is not in them.
    return Observation(
        request_rate=rate,
        p95_latency_s=histogram_quantile(0.95, [c.latency - c.held for c in done]),
        p95_ttft_s=histogram_quantile(0.95, [c.ttft - c.held for c in done]),
        prompt_tps=sum(c.prompt for c in done) / span,
        generation_tps=gen,
        in_flight=in_flight,
        queued=queued,
        busy=sum(c.latency - c.held for c in done) / span,
        joules_per_token=jpt,
        energy_source="wattserve",
    )


@dataclass
class WattservePolicy:
    spec: ScalingInputs
    initial_replicas: int = 1
    interval_s: float = 15.0
    window_s: float = 60.0
    name: str = "wattserve"
    # minReplicas 0: a fixed idle timeout (spec.scaling.idleTimeoutSeconds); None: the
    # operator's cost model (wattserve.autoscale.idle), with what it learns here.
    idle_timeout_s: float | None = None
    state: ScalerState | None = None
    reasons: list[str] = field(default_factory=list)
    idle_decisions: list[IdleDecision] = field(default_factory=list)
    _energy: deque[tuple[float, float]] = field(default_factory=deque)
    # The operator's idle memory (reconcile.zero), kept the same way.
    _since: float | None = None
    _gaps: tuple[float, ...] = ()
    _active_rate: float | None = None

    def initial(self, view: ClusterView) -> int:
        # The deployment was created with this count: the first recommendation.
        self.state = ScalerState(replicas=self.initial_replicas,
                                 recommendations=((view.now, self.initial_replicas),))
        return self.initial_replicas

    def tick(self, view: ClusterView) -> int:
        now = view.now
        self._energy.append((now, view.energy_j()))
        while self._energy and now - self._energy[0][0] > self.window_s:
            self._energy.popleft()
        obs = observe(view, self.window_s, self._energy)
        if self.spec.min_replicas == 0 and self._to_zero(view, obs):
            self.reasons.append("ScaledToZero")
            return 0
        spec = replace(self.spec, current_replicas=view.desired,
                       ready_replicas=len(view.ready()), metrics_window_s=self.window_s)
        state = self.state or ScalerState(replicas=view.desired)
        decision, self.state = decide(spec, state, obs, now)
        self.reasons.append(decision.reason)
        return decision.desired_replicas

    def idle_decision(self) -> IdleDecision:
        """The idle timeout the operator would choose now (reconcile.zero.idle_tick)."""
        return idle_timeout(inputs_for(
            self.spec, active_rate=self._active_rate or 0.0, gaps=self._gaps,
            floor_s=idle_floor_s(self.spec), override_s=self.idle_timeout_s))

    def _to_zero(self, view: ClusterView, obs: Observation) -> bool:
        """The operator's idle tick (reconcile.zero.idle_tick) on the same clock: idle for
        the idle timeout -> zero; at zero, only a request wakes the model."""
        if obs.request_rate:
            self._active_rate = active_rate_after(self._active_rate, obs.request_rate)
        if view.desired == 0:
            return not (view.in_flight() or view.queued())
        clock = advance(self._since, self._gaps, obs, now=view.now, window_s=self.window_s,
                        woken=view.woken_at)
        self._since, self._gaps = clock.since, clock.gaps
        if clock.since is None:
            return False
        decision = self.idle_decision()
        self.idle_decisions.append(decision)
        return view.now - clock.since >= decision.seconds
