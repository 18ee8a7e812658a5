"""The layering rules of operator/wattserve, read from the source with ``ast``.

The pure core (api, planning, render, autoscale, reconcile) never imports the runtime
(``wattserve.controller``), the simulator, kopf or aiohttp; the runtime never imports the
simulator (the spec -> ScalingInputs adapter the autoscaler needs is in autoscale/inputs.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "wattserve"
PURE = ("api", "planning", "render", "autoscale", "reconcile")
FORBIDDEN_IN_PURE = ("wattserve.controller", "wattserve.simulate", "kopf", "aiohttp")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def _hits(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def edges(package: str, prefixes: tuple[str, ...]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted((PACKAGE / package).rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for module in imported_modules(path):
            if _hits(module, prefixes):
                found.add((rel, module))
    return found


@pytest.mark.parametrize("package", PURE)
def test_pure_core_imports_no_runtime_simulator_kopf_or_aiohttp(package: str) -> None:
    assert (PACKAGE / package).is_dir()
    assert edges(package, FORBIDDEN_IN_PURE) == set()


def test_runtime_never_imports_the_simulator() -> None:
    assert edges("controller", ("wattserve.simulate",)) == set()


def test_the_rules_see_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from wattserve.controller import kubeapi\n    import kopf\n")
    found = imported_modules(bad)
    assert _hits("wattserve.controller.kubeapi", FORBIDDEN_IN_PURE)
    assert {"wattserve.controller", "kopf"} <= found


def raw_metadata_reads(path: Path) -> list[int]:
    """Lines with a ``<x>.get("metadata") or {}`` chain: the reconcile logic reads an
    object's metadata through the typed ``api.status.ObjectMeta``, parsed at the edge."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return sorted(node.lineno for node in ast.walk(tree)
                  if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or)
                  and any(_gets_metadata(value) for value in node.values))


def _gets_metadata(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get" and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and node.args[0].value == "metadata")


@pytest.mark.parametrize("package", ("reconcile", "autoscale", "planning"))
def test_the_reconcile_logic_reads_metadata_typed(package: str) -> None:
    found = {path.relative_to(PACKAGE).as_posix(): lines
             for path in sorted((PACKAGE / package).rglob("*.py"))
             if (lines := raw_metadata_reads(path))}
    assert found == {}


def test_the_metadata_rule_sees_a_raw_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('def f(o):\n    return (o.get("metadata") or {}).get("labels")\n')
    assert raw_metadata_reads(bad) == [2]
