"""`dev-cluster down` walks the node's cgroups while containers exit: a directory that
vanishes during the walk is skipped (it once failed `down` with ENOENT and left the node up)."""

from __future__ import annotations

from pathlib import Path

import pytest
from wattserve.devcluster import hoststate


def test_walk_lists_nested_dirs_and_the_top_when_asked(tmp_path: Path) -> None:
    (tmp_path / "kubepods" / "burstable" / "pod1").mkdir(parents=True)
    found = hoststate._subdirs(tmp_path / "kubepods", with_top=True)
    assert set(found) == {tmp_path / "kubepods", tmp_path / "kubepods" / "burstable",
                          tmp_path / "kubepods" / "burstable" / "pod1"}


def test_a_cgroup_removed_during_the_walk_is_not_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "kubepods"
    (top / "burstable" / "pod1" / "ctr").mkdir(parents=True)
    real_scandir = hoststate.os.scandir

    def vanishing(path: object) -> object:  # the container's cgroup goes as we reach it
        if str(path).endswith("pod1"):
            (top / "burstable" / "pod1" / "ctr").rmdir()
            (top / "burstable" / "pod1").rmdir()
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(hoststate.os, "scandir", vanishing)
    found = hoststate._subdirs(top)
    assert top / "burstable" in found
