"""NOTES.txt renders (helm template does not print it: render it through a wrapper chart)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helmutil import API_VERSIONS, CHART, render

WRAPPER = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: |
{{ include "test.notes" . | indent 4 }}
"""


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("notes") / "wattserve"
    shutil.copytree(CHART, chart)
    notes = chart / "templates" / "NOTES.txt"
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + notes.read_text() + "\n{{- end }}\n"
    )
    notes.unlink()
    (chart / "templates" / "zz-notes.yaml").write_text(WRAPPER)
    return chart


def _notes(chart: Path, values: dict[str, Any] | None = None,
           api_versions: tuple[str, ...] = API_VERSIONS) -> str:
    docs = render(values, chart=chart, api_versions=api_versions)
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "notes"]
    text: str = cm["data"]["notes"]
    assert "<no value>" not in text
    return text


def test_notes_default(notes_chart: Path) -> None:
    text = _notes(notes_chart)
    assert "rollout status deployment/ws-wattserve" in text
    assert "all namespaces" in text
    assert "kubectl apply -f examples/pools.yaml" in text
    assert "podMonitor.enabled=true" in text


def test_notes_name_the_lease_that_tells_which_replica_acts(notes_chart: Path) -> None:
    text = _notes(notes_chart, {"operator": {"replicas": 2}})
    assert ("kubectl -n wattserve-system get lease ws-wattserve-leader -o jsonpath="
            "'{.spec.holderIdentity}{\"\\n\"}'") in text
    off = _notes(notes_chart, {"operator": {"leaderElection": {"enabled": False}}})
    assert "get lease" not in off


def test_notes_replicas_zero(notes_chart: Path) -> None:
    text = _notes(notes_chart, {"operator": {"replicas": 0}})
    assert "scaled to 0" in text
    assert "kubectl -n wattserve-system create token ws-wattserve" in text


def test_notes_operator_disabled_with_pools(notes_chart: Path) -> None:
    pools = yaml.safe_load((CHART / "examples" / "pools-values.yaml").read_text())
    text = _notes(notes_chart, {"operator": {"enabled": False}, **pools,
                                "dashboard": {"enabled": True}})
    assert "no operator Deployment" in text
    assert "None were declared" not in text
    assert "ws-wattserve-dashboard" in text


def test_notes_scoped_operator_run_by_hand_watches_only_its_namespaces(notes_chart: Path) -> None:
    text = _notes(notes_chart, {"operator": {"replicas": 0, "namespaces": ["team-a", "team-b"]}})
    assert "wattserve operator --namespace team-a --namespace team-b" in text
    assert "--all-namespaces" not in text  # scoped RBAC forbids it


def test_notes_say_a_monitor_asked_for_was_not_created(notes_chart: Path) -> None:
    values = {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}
    without = _notes(notes_chart, values, api_versions=())  # no Prometheus Operator CRDs
    assert "no PodMonitor was created" in without and "no ServiceMonitor was created" in without
    with_crds = _notes(notes_chart, values)
    assert "was created" not in with_crds


def test_notes_say_the_autoscaler_is_off_without_a_prometheus_url(notes_chart: Path) -> None:
    text = _notes(notes_chart, {"prometheus": {"url": ""}})
    assert "autoscaler is off" in text and "queries Prometheus at" not in text
