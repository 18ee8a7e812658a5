"""The chart's CRDs are byte-for-byte the top-level crds/ (the one source of truth)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .helmutil import CHART, REPO_ROOT, by_kind, render

SRC = REPO_ROOT / "crds"
DST = CHART / "crds"
SYNC = REPO_ROOT / "charts" / "sync-crds.sh"
FIX = "run charts/sync-crds.sh"


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if p.is_file()}


def test_same_files() -> None:
    src, dst = _files(SRC), _files(DST)
    assert src, "crds/ is empty"
    assert not src - dst, f"missing from the chart: {sorted(src - dst)}; {FIX}"
    assert not dst - src, f"in the chart but not in crds/: {sorted(dst - src)}; {FIX}"


@pytest.mark.parametrize("name", sorted(_files(SRC)))
def test_identical_bytes(name: str) -> None:
    dst = DST / name
    assert dst.is_file(), f"charts/wattserve/crds/{name} is missing; {FIX}"
    assert dst.read_bytes() == (SRC / name).read_bytes(), (
        f"charts/wattserve/crds/{name} differs from crds/{name}; {FIX}"
    )


def test_sync_check_passes() -> None:
    res = subprocess.run(["bash", str(SYNC), "--check"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr


def test_crds_rendered_with_include_crds() -> None:
    rendered = {d["metadata"]["name"]: d for d in by_kind(render(), "CustomResourceDefinition")}
    for path in sorted(SRC.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                assert rendered[doc["metadata"]["name"]] == doc


def _sandbox(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of crds/ and charts/ (script + chart crds) to run the sync script on."""
    root = tmp_path / "repo"
    shutil.copytree(SRC, root / "crds")
    (root / "charts" / "wattserve").mkdir(parents=True)
    shutil.copytree(DST, root / "charts" / "wattserve" / "crds")
    shutil.copy2(SYNC, root / "charts" / "sync-crds.sh")
    return root / "crds", root / "charts" / "wattserve" / "crds", root / "charts" / "sync-crds.sh"


def test_sync_script_handles_new_changed_and_removed_files(tmp_path: Path) -> None:
    src, dst, script = _sandbox(tmp_path)
    # A new CRD file (e.g. kopf's peering CRDs), a changed one, and a stale chart copy.
    (src / "kopf-peering.yaml").write_text("# kopf peering\napiVersion: x\n")
    changed = sorted(src.glob("wattserve.dev_*.yaml"))[0]
    changed.write_bytes(changed.read_bytes() + b"# changed\n")
    (dst / "old.yaml").write_text("stale\n")

    check = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 1
    for name in ("kopf-peering.yaml", changed.name, "old.yaml"):
        assert name in check.stderr

    sync = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert sync.returncode == 0, sync.stderr
    assert _files(src) == _files(dst)
    for p in src.iterdir():
        assert (dst / p.name).read_bytes() == p.read_bytes()
    again = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0, again.stderr
