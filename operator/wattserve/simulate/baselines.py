"""Baseline scaling policies, faithful to their documented defaults.

* Kubernetes HPA (autoscaling/v2) on CPU utilization, kube-controller-manager defaults:
  15 s sync (``--horizontal-pod-autoscaler-sync-period``), 10 % tolerance,
  ``desired = ceil(current x metric / target)``, scale-down stabilization 300 s (highest
  recommendation in the window), scale-up at most max(100 %, 4 pods) per 15 s, not-yet-
  ready pods counted at 0 % when scaling up. "CPU utilization" of a serving pod is the
  fraction of the metrics window it spent serving (busy), which is what a llama.cpp or
  vLLM engine loop burns CPU for.
* Ray Serve default autoscaling policy: ``target_ongoing_requests`` 2,
  ``upscale_delay_s`` 30, ``downscale_delay_s`` 600, ``look_back_period_s`` 30,
  ``metrics_interval_s`` 10; ``desired = ceil(total ongoing / target)`` (smoothing 1),
  applied only after the same direction has been recommended for the whole delay.
* Static: a fixed replica count (provisioned for the peak).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from wattserve.simulate.engine import ClusterView


@dataclass
class StaticPolicy:
    replicas: int
    name: str = "static"
    interval_s: float = 3600.0

    def initial(self, view: ClusterView) -> int:
        return self.replicas

    def tick(self, view: ClusterView) -> int:
        return self.replicas


@dataclass
class HpaPolicy:
    target_utilization: float = 0.8  # 0..1 of the pod's CPU request
    min_replicas: int = 1
    max_replicas: int = 100
    initial_replicas: int = 1
    interval_s: float = 15.0
    tolerance: float = 0.1
    scale_down_window_s: float = 300.0
    scale_up_pods: int = 4
    scale_up_percent: float = 100.0
    name: str = "hpa"
    _prev: dict[int, tuple[float, float]] = field(default_factory=dict)
    _recs: deque[tuple[float, int]] = field(default_factory=deque)

    def initial(self, view: ClusterView) -> int:
        return self.initial_replicas

    def tick(self, view: ClusterView) -> int:
        now = view.now
        current = view.desired
        utils: list[float] = []
        unready = 0
        for rep in view.replicas():
            rep.advance(now)
            prev = self._prev.get(rep.rid)
            self._prev[rep.rid] = (now, rep.busy_s)
            if not rep.is_ready(now) or prev is None or prev[0] < rep.ready_at:
                unready += 1  # no full metrics window since it became ready
                continue
            utils.append((rep.busy_s - prev[1]) / max(now - prev[0], 1e-9))
        rec = current
        if utils:
            ratio = sum(utils) / len(utils) / self.target_utilization
            if abs(ratio - 1.0) > self.tolerance:
                if ratio > 1.0 and unready:
                    ratio = sum(utils) / (len(utils) + unready) / self.target_utilization
                    if ratio > 1.0 + self.tolerance:
                        rec = math.ceil(ratio * (len(utils) + unready))
                else:
                    rec = math.ceil(ratio * len(utils))
        rec = min(max(rec, self.min_replicas), self.max_replicas)
        self._recs.append((now, rec))
        while self._recs and now - self._recs[0][0] >= self.scale_down_window_s:
            self._recs.popleft()
        if rec < current:
            rec = min(current, max(r for _, r in self._recs))
        elif rec > current:
            limit = max(math.ceil(current * (1 + self.scale_up_percent / 100.0)),
                        current + self.scale_up_pods)
            rec = min(rec, limit)
        return rec


@dataclass
class RayServePolicy:
    target_ongoing_requests: float = 2.0
    min_replicas: int = 1
    max_replicas: int = 100
    initial_replicas: int = 1
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    look_back_period_s: float = 30.0
    metrics_interval_s: float = 10.0
    interval_s: float = 1.0  # controller loop (Ray's is 0.1 s; delays are in seconds)
    name: str = "rayserve"
    _local: list[tuple[float, float]] = field(default_factory=list)
    _pushed: deque[tuple[float, float]] = field(default_factory=deque)
    _last_push: float = 0.0
    _counter: int = 0

    def initial(self, view: ClusterView) -> int:
        return self.initial_replicas

    def tick(self, view: ClusterView) -> int:
        now = view.now
        ready = view.ready()
        # Replicas record ongoing requests (running + queued at the replica) continuously
        # and push them every metrics_interval_s; requests held by the router count too.
        ongoing = sum(r.outstanding for r in ready) + view.router_queued()
        self._local.append((now, float(ongoing)))
        if now - self._last_push >= self.metrics_interval_s:
            self._pushed.extend(self._local)
            self._local.clear()
            self._last_push = now
        while self._pushed and now - self._pushed[0][0] > self.look_back_period_s + \
                self.metrics_interval_s:
            self._pushed.popleft()
        current = view.desired
        if not self._pushed or not ready:
            return current
        cut = self._last_push - self.look_back_period_s
        window = [v for t, v in self._pushed if t > cut]
        total = sum(window) / len(window)
        desired = math.ceil(total / self.target_ongoing_requests - 1e-9)
        desired = min(max(desired, self.min_replicas), self.max_replicas)
        if desired > current:
            self._counter = max(self._counter, 0) + 1
            if self._counter * self.interval_s >= self.upscale_delay_s:
                self._counter = 0
                return desired
        elif desired < current:
            self._counter = min(self._counter, 0) - 1
            if -self._counter * self.interval_s >= self.downscale_delay_s:
                self._counter = 0
                return desired
        else:
            self._counter = 0
        return current
