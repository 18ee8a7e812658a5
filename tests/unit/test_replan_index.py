"""Which ModelDeployments a ServingPool change re-plans."""

from __future__ import annotations

from wattserve.reconcile.index import PlacementIndex


def _index() -> PlacementIndex:
    idx = PlacementIndex()
    idx.record(("a", "on-cpu"), "cpu-general", None)
    idx.record(("a", "on-l4"), "gpu-l4", None)
    idx.record(("b", "pinned-h100"), "gpu-l4", "gpu-h100")
    idx.record(("b", "unplaced"), None, None)
    return idx


def test_pool_change_affects_those_placed_on_it_and_the_unplaced() -> None:
    assert _index().affected("cpu-general") == {("a", "on-cpu"), ("b", "unplaced")}


def test_pool_change_affects_those_pinned_to_it() -> None:
    assert _index().affected("gpu-h100") == {("b", "pinned-h100"), ("b", "unplaced")}


def test_unknown_pool_affects_only_the_unplaced() -> None:
    assert _index().affected("new-pool") == {("b", "unplaced")}


def test_re_recording_moves_a_model_deployment_between_pools() -> None:
    idx = _index()
    idx.record(("a", "on-cpu"), "gpu-l4", None)
    assert ("a", "on-cpu") not in idx.affected("cpu-general")
    assert ("a", "on-cpu") in idx.affected("gpu-l4")
    idx.record(("b", "unplaced"), "cpu-general", None)
    assert ("b", "unplaced") not in idx.affected("gpu-h100")


def test_forgotten_model_deployments_are_never_affected() -> None:
    idx = _index()
    idx.forget(("a", "on-l4"))
    idx.forget(("b", "unplaced"))
    assert idx.affected("gpu-l4") == {("b", "pinned-h100")}
    assert len(idx) == 2
