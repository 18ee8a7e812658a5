"""`wattserve plan` with several models or a directory plans the fleet together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from wattserve.cli.main import main
from wattserve.planning import optimum

from tests.unit.factories import EXAMPLES

POOLS = str(EXAMPLES / "pools.yaml")


def twelve(tmp_path: Path) -> Path:
    doc = yaml.safe_load((EXAMPLES / "models" / "smollm2-135m.yaml").read_text())
    for index in range(12):
        doc["metadata"]["name"] = f"smol-{index:02d}"
        (tmp_path / f"smol-{index:02d}.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "notes.txt").write_text("not a manifest")
    return tmp_path


def test_a_directory_is_planned_as_a_fleet_against_all_gpu_and_the_optimum(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(twelve(tmp_path)), "--pools", POOLS, "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    pools = [m["placement"]["pool"] for m in data["models"]]
    assert pools == ["cpu-general"] * 6 + ["gpu-l4"] * 6
    assert data["models"][6]["fleet"]["spilledFrom"] == "cpu-general"
    assert data["models"][6]["placement"]["reason"].startswith(
        "cpu-general full: 48/48 vCPU committed")
    rows = {row["placement"]: row for row in data["fleet"]}
    assert set(rows) == {"wattserve", "everything on GPU", "optimum (ILP)"}
    greedy, gpu, best = (rows["wattserve"], rows["everything on GPU"],
                         rows["optimum (ILP)"])
    assert greedy["placed"] == gpu["placed"] == best["placed"] == 12
    assert float(best["usdPerHour"]) <= float(greedy["usdPerHour"]) < float(gpu["usdPerHour"])
    assert float(greedy["vsOptimum"]) >= 1.0 and best["note"].startswith("optimal")
    for key in ("kW", "gramsCO2PerHour", "seconds"):
        float(greedy[key])


def test_the_fleet_table_shows_models_pools_and_the_comparison(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(twelve(tmp_path)), "--pools", POOLS]) == 0
    out = capsys.readouterr().out
    assert "cpu-general  maxNodes       48/48 vCPU committed" in out
    for row in ("wattserve", "everything on GPU", "optimum (ILP)", "COST VS OPTIMUM"):
        assert row in out


def test_without_scipy_the_optimum_is_skipped_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optimum, "available", lambda: False)
    assert main(["plan", "-f", str(twelve(tmp_path)), "--pools", POOLS, "-o", "yaml"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == f"wattserve plan: {optimum.MISSING_SCIPY}"
    data = yaml.safe_load(captured.out)
    assert [row["placement"] for row in data["fleet"]] == ["wattserve",
                                                          "everything on GPU"]


def test_a_fleet_that_does_not_fit_exits_1_and_names_pools_full(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pools = [d for d in yaml.safe_load_all(Path(POOLS).read_text()) if d]
    cpu_only = tmp_path / "pools.yaml"
    cpu_only.write_text(yaml.safe_dump(pools[0]))
    folder = tmp_path / "fleet"
    folder.mkdir()
    assert main(["plan", "-f", str(twelve(folder)), "--pools", str(cpu_only), "-o", "json",
                 "--no-optimum"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [m["fleet"].get("notPlaced") for m in data["models"]][5:] == [
        None] + ["PoolsFull"] * 6


@pytest.mark.parametrize("bad", [["--time-limit", "0"], ["--time-limit", "x"],
                                 ["--fleet-objective", "speed"]])
def test_bad_fleet_flags_exit_2_with_one_line(bad: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-f", str(EXAMPLES / "models"), "--pools", POOLS, *bad])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_empty_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(tmp_path), "--pools", POOLS]) == 2
    assert "directory has no .yaml files" in capsys.readouterr().err


def test_a_plan_from_the_incumbent_after_the_pool_grew_keeps_or_improves_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "fleet"
    folder.mkdir()
    assert main(["plan", "-f", str(twelve(folder)), "--pools", POOLS, "-o", "json",
                 "--no-optimum"]) == 0
    before = tmp_path / "before.json"
    before.write_text(capsys.readouterr().out)
    grown = tmp_path / "pools.yaml"  # cpu-general: 3 -> 4 nodes, room for two more models
    grown.write_text(Path(POOLS).read_text().replace("maxNodes: 3", "maxNodes: 4", 1))
    assert main(["plan", "-f", str(folder), "--pools", str(grown), "-o", "json",
                 "--no-optimum", "--incumbent", str(before)]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["placement"]: row for row in data["fleet"]}
    now, was = rows["wattserve (from incumbent)"], rows["incumbent (--incumbent)"]
    assert now["placed"] == was["placed"] == 12
    assert float(now["usdPerHour"]) < float(was["usdPerHour"])
    old = {m["modelDeployment"]: m["fleet"]["pool"]
           for m in json.loads(before.read_text())["models"]}
    pools = {m["modelDeployment"]: m["fleet"]["pool"] for m in data["models"]}
    moved = sorted(name for name in pools if pools[name] != old[name])
    assert len(moved) == 2 and all(pools[name] == "cpu-general" for name in moved)


@pytest.mark.parametrize("text", ["{}", "models: [1]", "models: [{namespace: default, "
                                  "modelDeployment: smol-00, fleet: {pool: cpu-general}}]",
                                  "[unclosed"])
def test_a_bad_incumbent_exits_2_with_one_line(text: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    folder = tmp_path / "fleet"
    folder.mkdir()
    assert main(["plan", "-f", str(twelve(folder)), "--pools", POOLS, "--no-optimum",
                 "--incumbent", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wattserve plan: --incumbent: ")


_ENTRY = ("{{namespace: {ns}, modelDeployment: smol-00, fleet: {{pool: cpu-general, replicas: 1}}, "
          "placement: {{cpuRequest: {cpu}, memoryRequestGiB: 1}}}}")


@pytest.mark.parametrize(("models", "needle"), [
    # 5e-324 CPUs made the node room infinite: an OverflowError traceback before
    ([_ENTRY.format(ns="default", cpu="5e-324")], "models[0].placement.cpuRequest: must be"),
    ([_ENTRY.format(ns="default", cpu="1e308")], "models[0].placement.cpuRequest: must be"),
    ([_ENTRY.format(ns="5", cpu="1")], "models[0].namespace: not a name"),
    ([_ENTRY.format(ns="default", cpu="1")] * 2, "models[1]: default/smol-00 is listed twice"),
])
def test_an_incumbent_with_requests_out_of_range_or_models_twice_is_refused_by_its_field(
        models: list[str], needle: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [" + ", ".join(models) + "]\n")
    folder = tmp_path / "fleet"
    folder.mkdir()
    assert main(["plan", "-f", str(twelve(folder)), "--pools", POOLS, "--no-optimum",
                 "--incumbent", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wattserve plan: --incumbent: "), err
    assert needle in err[0], err[0]
