"""``up``/``down``/``status`` of the dev cluster itself: idempotent, clean, no strays on failure.

These start their own small clusters in private state directories (not ``kube_cluster``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wattserve.devcluster import cli, commands, control_plane, processes
from wattserve.devcluster.state import ClusterState

pytestmark = pytest.mark.integration


def _processes_under(state_dir: Path) -> list[int]:
    """PIDs whose command line mentions ``state_dir`` (i.e. belong to that cluster)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not processes.is_alive(int(proc.name)):
            continue
        if any(str(state_dir) in arg for arg in processes.cmdline(int(proc.name))):
            found.append(int(proc.name))
    return found


def test_up_twice_status_down(
    devcluster_binaries: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "cluster"
    first = control_plane.up(state_dir, die_with_parent=True)
    try:
        pids = [p.pid for p in first.processes]
        assert [p.name for p in first.processes] == [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        ]
        again = control_plane.up(state_dir)
        assert [p.pid for p in again.processes] == pids, "second up must reuse the cluster"

        assert cli.run(["--state-dir", str(state_dir), "status", "-o", "json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["running"] is True
        assert all(c["alive"] and c["listening"] for c in info["components"])
        assert len(info["nodes"]) == 7 and all(n["ready"] for n in info["nodes"])

        assert cli.run(["--state-dir", str(state_dir), "status"]) == 0
        table = capsys.readouterr().out
        assert "kube-apiserver" in table and "gpu-h100-1" in table
        assert cli.run(["--state-dir", str(state_dir), "kubeconfig"]) == 0
        assert capsys.readouterr().out.strip() == str(state_dir / "kubeconfig")
    finally:
        assert control_plane.down(state_dir) is True
    assert not state_dir.exists()
    assert _processes_under(state_dir) == []
    assert control_plane.down(state_dir) is False  # down twice is fine


def test_failed_up_leaves_no_process_behind(
    devcluster_binaries: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = commands.apiserver_cmd

    def broken(*args: object, **kwargs: object) -> list[str]:
        return [*real(*args, **kwargs), "--no-such-flag=1"]  # type: ignore[arg-type]

    monkeypatch.setattr(commands, "apiserver_cmd", broken)
    state_dir = tmp_path / "cluster"
    with pytest.raises(control_plane.ClusterError, match="kube-apiserver exited") as err:
        control_plane.up(state_dir, die_with_parent=True)
    assert "logs in" in str(err.value)
    assert _processes_under(state_dir) == []
    assert ClusterState.load(state_dir) is None
    log = (state_dir / "logs" / "kube-apiserver.log").read_text()
    assert "no-such-flag" in log


def test_stale_state_is_cleaned_up(devcluster_binaries: None, tmp_path: Path) -> None:
    state_dir = tmp_path / "cluster"
    st = control_plane.up(state_dir, die_with_parent=True)
    try:
        apiserver = next(p for p in st.processes if p.name == "kube-apiserver")
        assert processes.stop(apiserver.pid, apiserver.binary)
        fresh = control_plane.up(state_dir, die_with_parent=True)
        assert control_plane.is_running(fresh)
        assert apiserver.pid not in [p.pid for p in fresh.processes]
    finally:
        control_plane.down(state_dir)
    assert _processes_under(state_dir) == []
