"""Energy attribution for a serving process.

Sources, first usable wins (label `source`):

1. ``nvml``  - NVIDIA total-energy counters (``nvmlDeviceGetTotalEnergyConsumption``, mJ)
   summed over the GPUs this process sees; needs pynvml and a GPU.
2. ``rapl``  - Linux powercap RAPL package counters
   (``/sys/class/powercap/intel-rapl:<N>/energy_uj``) when readable; wrap-around is handled
   with ``max_energy_range_uj``. This is socket-level energy, not per-pod.
3. ``model`` - a CPU power model::

       P = idle_w * (pod_cpus / node_cpus) + (max_w - idle_w) * share
       share = d(process CPU seconds) / (d(wall seconds) * node_cpus)     (clamped to [0, 1])

   with node watts from WATTSERVE_NODE_IDLE_WATTS / WATTSERVE_NODE_MAX_WATTS and
   node CPUs from WATTSERVE_NODE_CPUS (defaults: node CPUs = os.cpu_count(), idle =
   2.5 W x node CPUs, max = 7.5 W x node CPUs).

WATTSERVE_ENERGY_SOURCE=auto|nvml|rapl|model forces a source (serving-only knob).
"""

from __future__ import annotations

import glob
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wattserve import contract

ENV_ENERGY_SOURCE = "WATTSERVE_ENERGY_SOURCE"
IDLE_WATTS_PER_CPU = 2.5
MAX_WATTS_PER_CPU = 7.5
RAPL_GLOB = "/sys/class/powercap/intel-rapl:*"
_RAPL_TOP = re.compile(r"intel-rapl:\d+$")
MIN_POWER_WINDOW_S = 0.5


class EnergySource(Protocol):
    name: str

    def joules(self) -> float:
        """Cumulative joules since the source was created (monotonic)."""
        ...


class NvmlSource:
    name = "nvml"

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
        if count < 1:
            raise RuntimeError("no NVIDIA GPU")
        indices = _visible_gpus(count)
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        self._start = self._read_mj()

    def _read_mj(self) -> float:
        return float(sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles))

    def joules(self) -> float:
        return max(0.0, (self._read_mj() - self._start) / 1000.0)


def _visible_gpus(count: int) -> list[int]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible and all(p.strip().isdigit() for p in visible.split(",")):
        return [int(p) for p in visible.split(",") if int(p) < count]
    return list(range(count))


class RaplSource:
    name = "rapl"

    def __init__(self, pattern: str = RAPL_GLOB) -> None:
        zones = [Path(p) for p in sorted(glob.glob(pattern)) if _RAPL_TOP.search(p)]
        if not zones:
            raise RuntimeError("no RAPL package zones")
        self._zones = zones
        self._ranges = [_read_int(z / "max_energy_range_uj") or 2**32 for z in zones]
        self._last = [_read_int(z / "energy_uj", strict=True) for z in zones]
        self._total_uj = 0
        self._lock = threading.Lock()

    def joules(self) -> float:
        with self._lock:
            for i, zone in enumerate(self._zones):
                now = _read_int(zone / "energy_uj", strict=True)
                delta = now - self._last[i]
                if delta < 0:  # counter wrapped
                    delta += self._ranges[i]
                self._total_uj += max(0, delta)
                self._last[i] = now
            return self._total_uj / 1e6


def _read_int(path: Path, strict: bool = False) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        if strict:
            raise
        return 0


@dataclass(frozen=True)
class PowerModel:
    """The documented CPU power model (see module docstring)."""

    idle_watts: float
    max_watts: float
    node_cpus: float
    pod_cpus: float

    def watts(self, cpu_seconds: float, wall_seconds: float) -> float:
        node = max(self.node_cpus, 1e-9)
        pod_fraction = min(1.0, self.pod_cpus / node)
        share = 0.0
        if wall_seconds > 0:
            share = min(1.0, max(0.0, cpu_seconds / (wall_seconds * node)))
        return self.idle_watts * pod_fraction + (self.max_watts - self.idle_watts) * share

    @classmethod
    def from_env(cls, pod_cpus: float, env: dict[str, str] | None = None) -> PowerModel:
        env = dict(os.environ if env is None else env)
        node_cpus = _float_env(env, contract.ENV_NODE_CPUS, float(os.cpu_count() or 1))
        idle = _float_env(env, contract.ENV_NODE_IDLE_WATTS, IDLE_WATTS_PER_CPU * node_cpus)
        peak = _float_env(env, contract.ENV_NODE_MAX_WATTS, MAX_WATTS_PER_CPU * node_cpus)
        return cls(idle, max(peak, idle), node_cpus, min(pod_cpus, node_cpus))


def _float_env(env: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, "").strip())
    except ValueError:
        return default
    return value if value > 0 else default


def process_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class CpuModelSource:
    name = "model"

    def __init__(
        self,
        model: PowerModel,
        cpu_clock: Callable[[], float] = process_cpu_seconds,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self._cpu = cpu_clock
        self._wall = wall_clock
        self._last_cpu = cpu_clock()
        self._last_wall = wall_clock()
        self._total = 0.0
        self._lock = threading.Lock()

    def joules(self) -> float:
        with self._lock:
            cpu, wall = self._cpu(), self._wall()
            d_cpu, d_wall = cpu - self._last_cpu, wall - self._last_wall
            if d_wall > 0:
                self._total += self.model.watts(max(0.0, d_cpu), d_wall) * d_wall
                self._last_cpu, self._last_wall = cpu, wall
            return self._total


def select_source(pod_cpus: float, env: dict[str, str] | None = None) -> EnergySource:
    """The first usable source in nvml → rapl → model order (or the forced one)."""
    env = dict(os.environ if env is None else env)
    forced = env.get(ENV_ENERGY_SOURCE, "auto").strip().lower() or "auto"
    if forced in ("auto", "nvml"):
        try:
            import pynvml

            return NvmlSource(pynvml)
        except Exception:  # no pynvml, no driver, no GPU
            pass
    if forced in ("auto", "rapl"):
        try:
            return RaplSource()
        except (RuntimeError, OSError, ValueError):
            pass
    return CpuModelSource(PowerModel.from_env(pod_cpus, env))


class EnergyMeter:
    """Turns a cumulative source into counter increments and a power gauge."""

    def __init__(self, source: EnergySource, sink: Callable[[str, float, float], None]) -> None:
        self.source = source
        self._sink = sink
        self._lock = threading.Lock()
        self._last_j = source.joules()
        self._window_j = self._last_j
        self._window_t = time.monotonic()
        self._watts = 0.0
        sink(source.name, 0.0, 0.0)

    @property
    def watts(self) -> float:
        return self._watts

    def sample(self) -> None:
        """Read the source; add the new joules; refresh power over >= 0.5 s windows."""
        with self._lock:
            total = self.source.joules()
            delta = max(0.0, total - self._last_j)
            self._last_j = max(total, self._last_j)
            now = time.monotonic()
            if now - self._window_t >= MIN_POWER_WINDOW_S:
                self._watts = (self._last_j - self._window_j) / (now - self._window_t)
                self._window_j, self._window_t = self._last_j, now
            self._sink(self.source.name, delta, self._watts)
