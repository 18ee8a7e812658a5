"""`wattserve operator` refuses what cannot work in one line, exit code 2, before it starts:
NaN or infinite periods, bad flags, and no credentials for any API server."""

from __future__ import annotations

from pathlib import Path

import pytest
from wattserve.controller.cli import credentials_problem, run


@pytest.mark.parametrize("argv", [
    ["--resync-seconds", "nan"], ["--resync-seconds", "inf"],
    ["--rebalance-dwell-seconds", "nan"], ["--rebalance-min-gain", "nan"],
    ["--autoscale-interval", "inf"], ["--scrape-interval", "nan"],
    ["--workers", "x"], ["--no-such-flag"],
])
def test_a_bad_flag_is_one_line_and_exit_2(argv: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = run(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wattserve operator: "), err


def test_a_missing_kubeconfig_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert run(["--standalone"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"wattserve operator: KUBECONFIG={tmp_path / 'missing'}: no such file"]


def test_credentials_are_found_where_the_operator_logs_in(tmp_path: Path) -> None:
    token, home = tmp_path / "token", tmp_path / "home"
    home.mkdir()
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\n")
    # KUBECONFIG: any listed file that exists (kubectl merges the list)
    assert credentials_problem({"KUBECONFIG": f"{tmp_path / 'x'}:{kubeconfig}"}, home,
                               token) is None
    assert "no such file" in str(credentials_problem({"KUBECONFIG": str(tmp_path / "x")},
                                                     home, token))
    # nothing at all
    assert "no credentials" in str(credentials_problem({}, home, token))
    # the in-cluster ServiceAccount token
    token.write_text("t")
    assert credentials_problem({}, home, token) is None
    token.unlink()
    # ~/.kube/config
    (home / ".kube").mkdir()
    (home / ".kube" / "config").write_text("apiVersion: v1\n")
    assert credentials_problem({}, home, token) is None
