"""`plan` and `simulate` refuse absurd input in one line with exit 2, within time and memory.

Each case runs the real CLI in a subprocess with a 60 s and 2 GiB address-space limit:
before the bounds, several never finished (0.7-5.2 GB in 30-120 s) or showed a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wattserve.api import MAX_MANIFEST_CHARS

from tests.unit.factories import EXAMPLES, REPO

POOLS = str(EXAMPLES / "pools.yaml")
SMOL = str(EXAMPLES / "models" / "smollm2-135m.yaml")
LIMIT_AS = 2 << 30
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def _cli(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "wattserve.cli.main", *argv], input=stdin,
                          capture_output=True, text=True, timeout=60, preexec_fn=_limits,
                          env=env, check=False)


def _refused(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert needle in lines[0], lines[0]


def _trace(tmp_path: Path, rows: str) -> str:
    path = tmp_path / "trace.csv"
    path.write_text(HEADER + rows)
    return str(path)


@pytest.mark.parametrize(("rows", "needle"), [
    ("2023-11-16 18:15:46.6805900,100000000000000000000,5\n", "ContextTokens"),
    ("2023-11-16 18:15:46,10,5\n9999-12-31 23:59:59,10,5\n", "TIMESTAMP"),
    ("2023-11-16 18:15:46,10,5\n0001-01-01 00:00:00,10,5\n", "TIMESTAMP"),
])
def test_simulate_refuses_absurd_traces(tmp_path: Path, rows: str, needle: str) -> None:
    _refused(_cli("simulate", "--trace", _trace(tmp_path, rows), "--model", SMOL,
                  "--pools", POOLS), needle)


@pytest.mark.parametrize(("spec", "needle"), [
    ("rate=-1", "rate"), ("burst=-5", "burst"), ("rate=inf", "rate"), ("hours=nan", "hours"),
    ("rate=0", "rate"), ("hours=1e9", "hours"), ("rate=9000,hours=700", "requests"),
    ("seed=nan", "seed"), ("rate=x", "rate"),
    # the bank's families: a unit rate or length without a bound never finished
    ("family=steady,unit=1e12", "unit"), ("family=flash,unit=nan", "unit"),
    ("family=onoff,hours=1e9", "hours"), ("family=heavy,prompt=0", "prompt"),
    ("family=diurnal,gen=inf", "gen"), ("family=long,hours=200,unit=10", "requests"),
    ("family=sparse,seed=nan", "seed"), ("family=nope", "family"),
])
def test_simulate_refuses_absurd_generators(spec: str, needle: str) -> None:
    _refused(_cli("simulate", "--generate", spec, "--model", SMOL, "--pools", POOLS), needle)


@pytest.mark.parametrize(("flag", "value"), [
    ("--rate-scale", "nan"), ("--rate-scale", "0"), ("--length-scale", "inf"),
    ("--max-replicas", "1000000000"), ("--slo-ms", "0"), ("--setting", "nan"),
])
def test_simulate_refuses_absurd_flags(flag: str, value: str) -> None:
    _refused(_cli("simulate", "--generate", "hours=0.1", "--model", SMOL, "--pools", POOLS,
                  flag, value), flag)


@pytest.mark.parametrize(("text", "needle"), [
    ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 3)) + "[" * 100_000, "YAML"),
    ("[" * 100_000 + "]" * 100_000, "YAML"),
    ("apiVersion: v1\nkind: List\nitems: []\n", "no object"),
])
def test_plan_refuses_deep_or_empty_yaml(text: str, needle: str) -> None:
    _refused(_cli("plan", "-f", "-", "--pools", POOLS, stdin=text), needle)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(rps=st.integers(33, 400), params=st.integers(33, 400))
def test_plan_refuses_numbers_past_the_crd_bounds(rps: int, params: int) -> None:
    model = Path(SMOL).read_text().replace("requestsPerSecond:", "requestsPerSecond: "
                                           f"\"{'9' * rps}\" #")
    model = model.replace("parameters:", f"parameters: \"{'9' * params}M\" #")
    proc = _cli("plan", "-f", "-", "--pools", POOLS, stdin=model)
    _refused(proc, "at most 32 characters")


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.tuples(st.text(max_size=30), st.text(max_size=25),
                               st.text(max_size=25)), max_size=5))
def test_trace_reader_fails_only_with_value_errors(tmp_path_factory: pytest.TempPathFactory,
                                                   rows: list[tuple[str, str, str]]) -> None:
    from wattserve.simulate.trace_files import read_trace

    path = tmp_path_factory.mktemp("t") / "trace.csv"
    text = HEADER + "".join(",".join(c.replace(",", "").replace("\n", "").replace("\r", "")
                                     .replace('"', "") for c in row) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(ValueError, KeyError):  # the CLI's one line, exit 2
        read_trace(path)


@pytest.mark.parametrize(("which", "content", "needle"), [
    ("--model", None, "--model"),  # a directory
    ("--model", b"\xd6\xff binary", "not a UTF-8 text file"),
    ("--model", b"kind: ModelDeployment\n", "apiVersion not set"),
    ("--pools", b"", "is empty"),
    ("--pools", b"apiVersion: wattserve.dev/v1alpha1\nkind: ModelDeployment\n",
     "no ServingPool document"),
    ("--model", b"apiVersion: wattserve.dev/v1alpha1\nkind: ServingPool\n",
     "no ModelDeployment document"),
])
def test_simulate_names_the_unreadable_manifest(tmp_path: Path, which: str,
                                                content: bytes | None, needle: str) -> None:
    path = tmp_path / "given.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    files = {"--model": SMOL, "--pools": POOLS, which: str(path)}
    _refused(_cli("simulate", "--generate", "hours=0.1", "--model", files["--model"],
                  "--pools", files["--pools"]), needle)


@pytest.mark.parametrize("which", ["--model", "--pools"])
def test_simulate_reads_one_manifest_from_stdin(which: str) -> None:
    files = {"--model": SMOL, "--pools": POOLS}
    text = Path(files[which]).read_text()
    files[which] = "-"
    piped = _cli("simulate", "--generate", "hours=0.1", "--model", files["--model"],
                 "--pools", files["--pools"], "-o", "json", stdin=text)
    direct = _cli("simulate", "--generate", "hours=0.1", "--model", SMOL, "--pools", POOLS,
                  "-o", "json")
    assert piped.returncode == direct.returncode == 0, piped.stderr[-2000:]
    assert json.loads(piped.stdout) == json.loads(direct.stdout)


def test_simulate_refuses_stdin_for_both_manifests() -> None:
    _refused(_cli("simulate", "--generate", "hours=0.1", "--model", "-", "--pools", "-",
                  stdin=""), "stdin (-) can be read once")


def test_a_binary_or_oversized_stdin_is_refused_in_one_line() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]))
    for data, needle in ((b"\xd6\xff binary", "not a UTF-8 text file"),
                         (b"#" * (MAX_MANIFEST_CHARS + 1), "larger than")):
        proc = subprocess.run([sys.executable, "-m", "wattserve.cli.main", "plan", "-f", "-",
                               "--pools", POOLS], input=data, capture_output=True,
                              timeout=60, env=env, check=False)
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], lines
