"""The README's quick start is what CI runs: every command in it must exist and do something."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _quick_start_commands(readme: Path) -> list[str]:
    out = subprocess.run(["bash", str(REPO / "scripts" / "readme-commands.sh"), str(readme)],
                         capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.split("\n")[:-1]


def _has_recipe(target: str) -> bool:
    """`make -n TARGET` prints what it would run; a target without a recipe prints nothing
    (or "Nothing to be done"), an unknown one fails."""
    out = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    text = out.stdout.strip()
    return out.returncode == 0 and bool(text) and "Nothing to be done" not in text


def test_quick_start_names_the_demo_and_the_tests() -> None:
    assert _quick_start_commands(REPO / "README.md") == ["make demo", "make test"]


def test_every_make_target_the_readme_names_has_a_recipe() -> None:
    targets = set(re.findall(r"(?m)(?:^|\$ |`)make ([a-z][a-z0-9-]*)",
                             (REPO / "README.md").read_text()))
    assert {"demo", "test"} <= targets
    missing = sorted(t for t in targets if not _has_recipe(t))
    assert not missing, f"README names make targets with no recipe: {missing}"


def test_ci_runs_exactly_the_quick_start_commands(tmp_path: Path) -> None:
    """.ci/run takes its commands from the README, so a README without them turns CI red."""
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Quick start\n\n```console\nmake demo   # story\nmake test\n"
                      "```\n\n```console\nmake install\n```\n\n## Next\n```\nmake bench\n```\n")
    assert _quick_start_commands(readme) == ["make demo", "make test"]
    readme.write_text("# x\n\n## Quick start\n\nnothing here\n")
    assert _quick_start_commands(readme) == []
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/readme-commands.sh README.md" in ci
    assert "no make commands" in ci  # an empty quick start fails the run
