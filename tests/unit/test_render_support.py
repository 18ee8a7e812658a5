"""Builders shared by the render, conditions, replan and controller unit tests (no tests here)."""

from __future__ import annotations

import copy
from typing import Any

from wattserve.api import load_yaml_documents, parse_model_deployment
from wattserve.api.types import ModelDeployment
from wattserve.planning import plan
from wattserve.render import RenderInputs, RenderSettings

from tests.unit.factories import EXAMPLES, example_pools


def example_md_doc(file: str, namespace: str = "team-a", uid: str = "uid-1") -> dict[str, Any]:
    doc = load_yaml_documents((EXAMPLES / "models" / file).read_text())[0]
    doc = copy.deepcopy(doc)
    doc["metadata"].update(namespace=namespace, uid=uid, generation=1)
    return doc


def inputs_for(doc: dict[str, Any], replicas: int | None = None,
               settings: RenderSettings | None = None) -> RenderInputs:
    md: ModelDeployment = parse_model_deployment(doc)
    pools = example_pools()
    chosen = plan(md, pools).chosen
    assert chosen is not None, "example must be feasible"
    pool = next(p for p in pools if p.name == chosen.pool)
    return RenderInputs(md, pool, chosen, chosen.replicas if replicas is None else replicas,
                        settings or RenderSettings())


def cpu_inputs(**kw: Any) -> RenderInputs:
    return inputs_for(example_md_doc("smollm2-135m.yaml"), **kw)


def gpu_inputs(**kw: Any) -> RenderInputs:
    return inputs_for(example_md_doc("llama-3.1-8b-high-load.yaml"), **kw)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}
