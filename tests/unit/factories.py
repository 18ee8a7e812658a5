"""Builders of valid API objects for unit tests (dicts as users write them)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from wattserve.api import ServingPool, load_yaml_documents, parse_serving_pool

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def md_doc(**spec_overrides: Any) -> dict[str, Any]:
    """A valid ModelDeployment; ``spec_overrides`` replace whole top-level spec keys."""
    doc: dict[str, Any] = {
        "apiVersion": "wattserve.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "demo", "namespace": "ns"},
        "spec": {
            "model": {"name": "m", "source": "hf://org/m", "parameters": "8B",
                      "quantization": "fp8", "contextLength": 8192},
            "slo": {"latencyP95Ms": 10000},
            "expectedLoad": {"requestsPerSecond": "1", "promptTokens": 256,
                             "outputTokens": 128},
        },
    }
    doc["spec"].update(copy.deepcopy(spec_overrides))
    return doc


def with_path(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy of ``doc`` with the dotted ``path`` set (``value is DELETE`` removes it)."""
    out = copy.deepcopy(doc)
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return out


DELETE = object()


def example_pools() -> list[ServingPool]:
    text = (EXAMPLES / "pools.yaml").read_text()
    return [parse_serving_pool(doc) for doc in load_yaml_documents(text)]


def example_pool_docs() -> list[dict[str, Any]]:
    return load_yaml_documents((EXAMPLES / "pools.yaml").read_text())
