"""`wattserve plan`: tables for people, JSON/YAML for machines, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wattserve.cli.main import main

from tests.unit.factories import EXAMPLES

POOLS = str(EXAMPLES / "pools.yaml")
SMOL = str(EXAMPLES / "models" / "smollm2-135m.yaml")


def test_table_lists_every_pool_and_marks_the_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", SMOL, "--pools", POOLS]) == 0
    out = capsys.readouterr().out
    assert "POOL" in out and "J/TOKEN" in out and "$/1M TOK" in out
    for pool in ("cpu-general", "gpu-l4", "gpu-h100"):
        assert pool in out
    assert "* cpu-general" in out
    assert "chosen: cpu-general" in out


def test_json_output_is_the_status_placement_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", SMOL, "--pools", POOLS, "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    placement = data["placement"]
    assert placement["pool"] == "cpu-general" and placement["engine"] == "llamacpp"
    assert {c["pool"] for c in placement["candidates"]} == {
        "cpu-general", "cpu-local", "gpu-l4", "gpu-h100"
    }
    for key in ("predictedP95Ms", "usdPerHour", "joulesPerToken", "gramsCO2PerMillionTokens"):
        float(placement[key])  # decimals are strings, and parse


def test_yaml_output_for_several_models(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (EXAMPLES / "models").glob("*.yaml"))
    args = ["plan", "--pools", POOLS, "-o", "yaml"]
    for f in files:
        args += ["-f", f]
    assert main(args) == 0
    data = yaml.safe_load(capsys.readouterr().out)["models"]  # several models: a fleet
    assert len(data) == len(files)
    assert all(item["placement"].get("pool") for item in data)


def test_unplaceable_model_exits_1_with_the_reason(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(Path(SMOL).read_text())
    doc["spec"]["slo"] = {"latencyP95Ms": 1}
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["plan", "-f", str(path), "--pools", POOLS]) == 1
    assert "not placed:" in capsys.readouterr().out


HEADER = "apiVersion: wattserve.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\n"
BAD_INPUTS = {
    "unknown-field": ("spec:\n  model: {name: m, source: 'hf://a/b', parameters: 8B}\n"
                      "  slo: {latencyP95Ms: 100}\n  replicas: 3\n", "spec.replicas"),
    "wrong-type": ("spec:\n  model: {name: m, source: 'hf://a/b', parameters: 8B}\n"
                   "  slo: {latencyP95Ms: fast}\n", "spec.slo.latencyP95Ms"),
    "min-above-max": ("spec:\n  model: {name: m, source: 'hf://a/b', parameters: 8B}\n"
                      "  slo: {latencyP95Ms: 100}\n  scaling: {minReplicas: 4, maxReplicas: 2}\n",
                      "spec.scaling.minReplicas"),
    "parameters-lots": ("spec:\n  model: {name: m, source: 'hf://a/b', parameters: lots}\n"
                        "  slo: {latencyP95Ms: 100}\n", "spec.model.parameters"),
    "empty": ("", "empty"),
    "not-yaml": ("spec: [unclosed\n", "not valid YAML"),
    "a-list": ("- 1\n- 2\n", "mapping"),
    "wrong-kind": ("kind: Deployment\napiVersion: apps/v1\n", "kind: expected"),
    "no-type-meta": ("metadata: {name: a}\n", "apiVersion and kind not set"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_prints_one_line_naming_the_field_and_exits_2(case: str,
                                                                tmp_path: Path) -> None:
    text, needle = BAD_INPUTS[case]
    if text and not text.startswith(("kind", "-", "metadata")) and "not-yaml" not in case:
        text = HEADER + text
    path = tmp_path / "md.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "wattserve.cli.main", "plan", "-f", str(path),
                           "--pools", POOLS], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_missing_file_and_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", "/nonexistent.yaml", "--pools", POOLS]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-f", SMOL, "--pools", POOLS, "-o", "xml"])
    assert exc.value.code == 2


def test_an_unknown_command_is_one_line_naming_the_commands(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("wattserve: unknown command 'frobnicate' (choose from plan, simulate,")
    assert "serve" in err and "wattserve --help" in err


@pytest.mark.parametrize("argv", [[], ["--help"]])
def test_no_command_or_help_prints_the_usage_and_exits_0(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: wattserve <command>") and "  dev-cluster " in out


def test_huge_prices_print_short_in_the_table_and_whole_in_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pools = Path(POOLS).read_text().replace('usdPerNodeHour: "0.8064"',
                                            'usdPerNodeHour: "123456789012345678901234567890.5"')
    path = tmp_path / "pools.yaml"
    path.write_text(pools)
    assert main(["plan", "-f", SMOL, "--pools", str(path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.strip().startswith("cpu-general"))
    figures = row.split()[6:12]  # P95 MS … gCO2/1M
    assert "6.17e+28" in figures and max(len(cell) for cell in figures) <= 8
    assert main(["plan", "-f", SMOL, "--pools", str(path), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cpu = next(c for c in data["placement"]["candidates"] if c["pool"] == "cpu-general")
    assert "e" not in cpu["usdPerHour"] and float(cpu["usdPerHour"]) > 6e28  # status: plain
