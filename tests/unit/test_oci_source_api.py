"""oci:// model sources in the API: the CRD's pattern and the parser agree, and a bad
reference is rejected with a message naming spec.model.source."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from wattserve.api import SpecError, parse_model_deployment
from wattserve.api.references import OCI_SOURCE_PATTERN

ROOT = Path(__file__).resolve().parents[2]


def _source_schema() -> dict[str, str]:
    crd = yaml.safe_load((ROOT / "crds/wattserve.dev_modeldeployments.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    source: dict[str, str] = spec["properties"]["model"]["properties"]["source"]
    return source


def _md(source: str) -> dict[str, object]:
    doc = yaml.safe_load((ROOT / "examples/models/smollm2-135m-oci.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = "team-a"
    doc["spec"]["model"]["source"] = source
    return doc


def test_crd_pattern_is_the_python_reference_grammar() -> None:
    assert _source_schema()["pattern"] == f"^((hf|gguf|pvc|s3)://.+|{OCI_SOURCE_PATTERN})$"


def test_example_oci_model_deployment_parses() -> None:
    md = parse_model_deployment(_md("oci://ghcr.io/wattserve/model-smollm2-135m:q4_1"))
    assert md.spec.model.source == "oci://ghcr.io/wattserve/model-smollm2-135m:q4_1"


@pytest.mark.parametrize("source", ["oci://", "oci://Bad/Repo", "oci://x/y:$(SECRET)",
                                    "oci://x/y@md5:1"])
def test_bad_oci_reference_is_rejected_naming_the_field(source: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_model_deployment(_md(source))
    assert info.value.path == "spec.model.source"
    assert "oci://" in str(info.value)
    assert not re.search(_source_schema()["pattern"], source)
