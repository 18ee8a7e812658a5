"""Power model formula, source selection, RAPL wrap-around, NVML, and the meter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wattserve_serving.energy import (
    CpuModelSource,
    EnergyMeter,
    NvmlSource,
    PowerModel,
    RaplSource,
    select_source,
)


def test_power_model_formula() -> None:
    m = PowerModel(idle_watts=100, max_watts=300, node_cpus=8, pod_cpus=2)
    assert m.watts(cpu_seconds=0, wall_seconds=1) == pytest.approx(25.0)  # 100 * 2/8
    # 2 CPU-seconds per second on an 8-CPU node = 25% share of (300-100)
    assert m.watts(cpu_seconds=2, wall_seconds=1) == pytest.approx(25.0 + 50.0)
    assert m.watts(cpu_seconds=100, wall_seconds=1) == pytest.approx(25.0 + 200.0)  # clamped
    assert m.watts(cpu_seconds=1, wall_seconds=0) == pytest.approx(25.0)


def test_power_model_env_and_defaults() -> None:
    env = {"WATTSERVE_NODE_IDLE_WATTS": "50", "WATTSERVE_NODE_MAX_WATTS": "150",
           "WATTSERVE_NODE_CPUS": "4"}
    m = PowerModel.from_env(pod_cpus=8, env=env)
    assert (m.idle_watts, m.max_watts, m.node_cpus, m.pod_cpus) == (50, 150, 4, 4)
    d = PowerModel.from_env(pod_cpus=1, env={"WATTSERVE_NODE_CPUS": "10",
                                             "WATTSERVE_NODE_IDLE_WATTS": "junk"})
    assert (d.idle_watts, d.max_watts) == (25.0, 75.0)  # 2.5 W and 7.5 W per node CPU


def test_cpu_model_source_integrates() -> None:
    clock = {"cpu": 0.0, "wall": 0.0}
    src = CpuModelSource(PowerModel(10, 30, 2, 1), lambda: clock["cpu"], lambda: clock["wall"])
    clock.update(cpu=1.0, wall=1.0)  # one busy CPU of two: share 0.5
    assert src.joules() == pytest.approx(5.0 + 10.0)
    clock.update(cpu=1.0, wall=3.0)  # idle two seconds
    assert src.joules() == pytest.approx(15.0 + 10.0)


def _zone(root: Path, name: str, energy: int, max_range: int) -> Path:
    zone = root / name
    zone.mkdir()
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone


def test_rapl_sums_packages_and_handles_wrap(tmp_path: Path) -> None:
    z0 = _zone(tmp_path, "intel-rapl:0", 900_000, 1_000_000)
    z1 = _zone(tmp_path, "intel-rapl:1", 0, 1_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 0, 1_000_000)  # sub-zone: not counted
    src = RaplSource(str(tmp_path / "intel-rapl:*"))
    (z0 / "energy_uj").write_text("100000")  # wrapped: +200000 uJ
    (z1 / "energy_uj").write_text("500000")
    assert src.joules() == pytest.approx(0.7)


def test_rapl_absent_falls_back_to_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("wattserve_serving.energy.RAPL_GLOB", "/nonexistent/intel-rapl:*")
    src = select_source(1.0, env={"WATTSERVE_ENERGY_SOURCE": "rapl"})
    assert src.name == "model"


class FakeNvml:
    def __init__(self) -> None:
        self.mj = [1000, 2000]

    def nvmlInit(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        return self.mj[h]


def test_nvml_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    nvml = FakeNvml()
    src = NvmlSource(nvml)
    nvml.mj = [3000, 2500]
    assert src.joules() == pytest.approx(2.5)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    only1 = NvmlSource(nvml)
    nvml.mj = [9000, 3500]
    assert only1.joules() == pytest.approx(1.0)


def test_meter_only_grows() -> None:
    values = iter([0.0, 1.0, 3.0, 2.0, 5.0])  # a source glitch must not decrease the counter

    class Src:
        name = "model"

        def joules(self) -> float:
            return next(values)

    seen: list[tuple[str, float, float]] = []
    meter = EnergyMeter(Src(), lambda s, j, w: seen.append((s, j, w)))
    for _ in range(4):
        meter.sample()
    deltas = [j for _, j, _ in seen]
    assert all(d >= 0 for d in deltas)
    assert sum(deltas) == pytest.approx(5.0)


def test_select_source_default_here_is_not_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    src: Any = select_source(1.0, env={"WATTSERVE_ENERGY_SOURCE": "model"})
    assert src.name == "model"
