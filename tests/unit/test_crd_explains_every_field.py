"""`kubectl explain` explains every field of our CRDs: each schema node, spec and status,
down to list items and map values, carries a description (as kubebuilder-generated CRDs
do), so a user reading `kubectl explain md.status.placement` learns the units. The one
exception is ``metadata``, which the API server forbids describing (it is ObjectMeta)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CRDS = Path(__file__).resolve().parents[2] / "crds"
OURS = sorted(p.name for p in CRDS.glob("wattserve.dev_*.yaml"))


def _nodes(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def test_both_crds_are_checked() -> None:
    assert OURS == ["wattserve.dev_modeldeployments.yaml", "wattserve.dev_servingpools.yaml"]


@pytest.mark.parametrize("name", OURS)
def test_every_schema_field_has_a_description(name: str) -> None:
    crd = yaml.safe_load((CRDS / name).read_text())
    for version in crd["spec"]["versions"]:
        root = version["schema"]["openAPIV3Schema"]
        bare = [path for path, node in _nodes(root, "") if path != ".metadata"
                and not str(node.get("description", "")).strip()]
        assert bare == [], f"{name} {version['name']}: fields without a description: {bare}"
