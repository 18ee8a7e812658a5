"""`wattserve simulate` refuses what cannot apply or is out of range before the run, in one
line naming the flag (exit 2); a model too small for the clock's resolution still ends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from wattserve.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SMOL = str(ROOT / "examples" / "models" / "smollm2-135m.yaml")
POOLS = str(ROOT / "examples" / "pools.yaml")
GEN = ["simulate", "--generate", "hours=0.05,rate=0.5", "--model", SMOL, "--pools", POOLS]


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str
                     ) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("wattserve simulate: "), err[0]
    for needle in needles:
        assert needle in err[0], err[0]
    assert captured.out == ""
    return err[0]


@pytest.mark.parametrize(("flag", "value"), [
    ("--trace-hours", "0.01"), ("--rate-scale", "2"), ("--length-scale", "1"),
    ("--time-unit", "ms"),
])
def test_trace_flags_with_generate_are_refused_not_ignored(
        flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2([*GEN, flag, value], capsys, flag, "--generate")


@pytest.mark.parametrize(("flags", "needles"), [
    (["--policy", "hpa", "--setting", "50"], ["--setting", "hpa", "<= 1"]),
    (["--policy", "static", "--setting", "5000"], ["--setting", "static", "1..1000"]),
    (["--policy", "static", "--setting", "0.3"], ["--setting", "static", "whole number"]),
    (["--policy", "static", "--setting", "2.5"], ["--setting", "static", "got 2.5"]),
    (["--policy", "hpa,static", "--setting", "0.5"], ["--setting", "static"]),
    (["--policy", "wattserve", "--setting", "2"], ["--setting", "wattserve", "takes none"]),
    (["--policy", "oracle", "--setting", "2"], ["--setting", "takes none"]),
    (["--policy", "static", "--sweep", "--setting", "2"], ["--setting", "--sweep"]),
    (["--policy", "rayserve", "--setting", "0"], ["--setting", "> 0"]),
])
def test_a_setting_out_of_its_policys_range_is_refused(
        flags: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2([*GEN, "--no-oracle", *flags], capsys, *needles)


def test_a_whole_static_setting_is_the_replicas_run(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert main([*GEN, "--no-oracle", "--policy", "static", "--setting", "3.0"]) == 0
    assert "3 replicas" in capsys.readouterr().out


@pytest.mark.parametrize(("plot", "needle"), [
    ("out.xyz", "'.xyz' is not an image format"),
    ("/proc/wattserve-test.png", "cannot write a file in /proc"),
    (SMOL + "/x.png", "is not a directory"),
    ("", "is a directory"),
])
def test_a_plot_that_cannot_be_written_is_refused_before_the_run(
        plot: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    _one_line_exit_2([*GEN, "--policy", "static", "--no-oracle", "--plot", plot], capsys,
                     f"--plot {plot}: ", needle)


def test_the_plot_written_is_the_path_printed(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    stem = tmp_path / "new" / "outplot"
    assert main([*GEN, "--policy", "static", "--no-oracle", "--plot", str(stem)]) == 0
    written = stem.with_name("outplot.png")
    assert f"plot: {written}" in capsys.readouterr().err.splitlines()
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "p.svg"
    assert main([*GEN, "--policy", "static", "--no-oracle", "--plot", str(svg)]) == 0
    assert f"plot: {svg}" in capsys.readouterr().err.splitlines()
    assert b"<svg" in svg.read_bytes()[:1000]


@pytest.mark.parametrize(("argv", "needle"), [
    ([*GEN, "-o", "xml"], "invalid choice: 'xml'"),
    ([*GEN, "--rate-scale", "abc"], "--rate-scale: invalid float value"),
    ([*GEN, "--bogus"], "unrecognized arguments: --bogus"),
    (["simulate", "--model", SMOL, "--pools", POOLS], "--trace --generate is required"),
])
def test_usage_errors_are_one_line(argv: list[str], needle: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and re.match(r"^wattserve simulate: ", err[0]), err
    assert needle in err[0]


@pytest.mark.parametrize("value", ["-1", "5000"])
def test_min_replicas_is_checked_before_the_files_are_read(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The model file does not exist: refused for the flag, before anything is loaded.
    _one_line_exit_2(["simulate", "--generate", "hours=0.05", "--model", "/nonexistent.yaml",
                      "--pools", POOLS, "--min-replicas", value], capsys,
                     f"--min-replicas must be 0..1000, got {value}")


@pytest.mark.timeout(60)
def test_a_model_of_one_parameter_finishes(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # 0.001K parameters (the CRD allows it): decode so fast that the next event fell
    # within float rounding of now and the replica's clock never moved: a hang.
    doc = yaml.safe_load(Path(SMOL).read_text())
    doc["spec"]["model"]["parameters"] = "0.001K"
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump(doc))
    assert main(["simulate", "--generate", "hours=0.05,seed=1", "--model", str(tiny),
                 "--pools", POOLS, "--policy", "static,hpa", "-o", "json"]) == 0
    assert '"requests"' in capsys.readouterr().out


@pytest.mark.parametrize(("source", "needles"), [
    (["--trace", ""], ["--trace: empty path"]),  # an AttributeError traceback before
    (["--generate", ""], ["--generate: empty"]),  # ran the default hour before
    (["--generate", ",,,"], ["--generate: empty"]),
    (["--generate", "hours=1,hours=2"], ["--generate hours: given twice"]),
    (["--generate", "hours=1_0"], ["--generate hours: not a number"]),
    (["--generate", "hours=inf"], ["--generate hours: not a number"]),
    (["--generate", "rate"], ["expected K=V"]),
    # said every prompt filled the context before
    (["--generate", "hours=1e-300"], ["--generate hours=1e-300", "no requests"]),
])
def test_an_empty_or_malformed_trace_source_is_refused_by_its_flag(
        source: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2(["simulate", *source, "--model", SMOL, "--pools", POOLS], capsys,
                     *needles)


def test_a_bad_pool_document_is_named_by_file_and_document_and_duplicates_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = [d for d in yaml.safe_load_all(Path(POOLS).read_text()) if d]
    bad = [*docs[:2], {**docs[2], "spec": {**docs[2]["spec"], "node": {
        **docs[2]["spec"]["node"], "cpu": "many"}}}]
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump_all(bad))
    args = ["simulate", "--generate", "hours=0.05,rate=0.5", "--model", SMOL, "--no-oracle"]
    # said only "spec.node.cpu: ..." before, of a file with several documents
    _one_line_exit_2([*args, "--pools", str(path)], capsys, f"{path}: document 3: spec.node.cpu")
    path.write_text(yaml.safe_dump_all([*docs, docs[0]]))
    # planned on both before ("no feasible placement: cpu-local: ...; cpu-local: ...")
    _one_line_exit_2([*args, "--pools", str(path)], capsys,
                     f"ServingPool {docs[0]['metadata']['name']!r} is defined twice")


def test_an_idle_timeout_without_scale_to_zero_is_refused_not_ignored(
        capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2([*GEN, "--no-oracle", "--idle-timeout", "300"], capsys,
                     "--idle-timeout", "--min-replicas 0")
    assert main([*GEN, "--no-oracle", "--policy", "wattserve", "--idle-timeout", "300",
                 "--min-replicas", "0"]) == 0
