"""The real API server (schema + CEL) and the Python parser judge every spec alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubeutil import Cluster
from wattserve.api import SpecError, parse_model_deployment, parse_serving_pool

from tests.spec_cases import CASES, POOL_CASES, Case, base_pool

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="module")
def crds_installed(kube_cluster: Cluster) -> Cluster:
    kube_cluster.kubectl("apply", "-f", str(CRDS))
    kube_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                         "crd/modeldeployments.wattserve.dev")
    return kube_cluster


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_api_server_and_parser_agree(case: Case, crds_installed: Cluster, namespace: str) -> None:
    doc = case.doc(name=f"agree-{case.id}"[:60])
    doc["metadata"]["namespace"] = namespace
    proc = crds_installed.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                                  input=yaml.safe_dump(doc), check=False)
    try:
        parse_model_deployment(doc)
        parser_error = None
    except SpecError as exc:
        parser_error = exc
    server_accepts = proc.returncode == 0
    assert server_accepts == case.valid, proc.stderr
    assert (parser_error is None) == case.valid, parser_error
    if not case.valid:
        assert case.field in proc.stderr, proc.stderr
        assert parser_error is not None and case.field in parser_error.path


@pytest.mark.integration
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_api_server_and_parser_agree_on_pool_tolerations(case: Case,
                                                         crds_installed: Cluster) -> None:
    doc = base_pool(f"agree-{case.id}"[:60])
    doc["spec"].update(case.patch)
    proc = crds_installed.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                                  input=yaml.safe_dump(doc), check=False)
    try:
        parse_serving_pool(doc)
        parser_error = None
    except SpecError as exc:
        parser_error = exc
    assert (proc.returncode == 0) == case.valid, proc.stderr
    assert (parser_error is None) == case.valid, parser_error
    if not case.valid:
        assert case.field in proc.stderr, proc.stderr
        assert parser_error is not None and case.field.split()[0] in str(parser_error)


@pytest.mark.integration
@pytest.mark.parametrize("pool", [False, True], ids=["modeldeployment", "servingpool"])
def test_the_api_server_refuses_an_object_without_spec(pool: bool, crds_installed: Cluster,
                                                        namespace: str) -> None:
    doc = base_pool("agree-no-spec") if pool else CASES[0].doc("agree-no-spec")
    del doc["spec"]
    if not pool:
        doc["metadata"]["namespace"] = namespace
    proc = crds_installed.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                                  input=yaml.safe_dump(doc), check=False)
    assert proc.returncode != 0 and "spec" in proc.stderr, proc.stderr
