"""ModelDeploymentStatus / ObjectMeta: parsed once from what the API returned, whatever its
shape; ``to_patch`` is the one merge patch back."""

from __future__ import annotations

from wattserve.api.status import ModelDeploymentStatus, ObjectMeta

BODY = {
    "metadata": {"name": "m", "namespace": "ns", "generation": 3, "resourceVersion": "17",
                 "annotations": {"a": "b"}},
    "status": {
        "replicas": {"desired": 2, "ready": 1},
        "placement": {"pool": "gpu-l4"},
        "conditions": [{"type": "Placed", "status": "True", "reason": "Placed"}, "junk"],
        "idle": {"scaledToZeroAt": "2026-01-01T00:00:00Z"},
        "scaler": {"replicas": 2},
        "owned": {"by": "someone else"},
    },
}


def test_fields_are_read_once_and_typed() -> None:
    st = ModelDeploymentStatus.from_body(BODY)
    assert (st.generation, st.desired_replicas, st.ready_replicas) == (3, 2, 1)
    assert [c["type"] for c in st.conditions] == ["Placed"]  # non-mappings dropped
    assert st.placed_pool() == "gpu-l4"
    assert st.idle["scaledToZeroAt"] and st.scaler == {"replicas": 2}
    meta = ObjectMeta.from_body(BODY)
    assert (meta.name, meta.namespace, meta.resource_version) == ("m", "ns", "17")
    assert meta.annotations == {"a": "b"} and meta.deletion_timestamp is None


def test_any_shape_reads_as_absent_instead_of_crashing() -> None:
    bad = {"metadata": "x", "status": {"replicas": [1], "placement": "p", "conditions": None,
                                       "current": 5, "idle": [], "scaler": "s"}}
    st = ModelDeploymentStatus.from_body(bad)
    assert (st.desired_replicas, st.placement, st.conditions, st.scaler) == (None, None, (), None)
    assert st.current == {} and st.idle == {} and st.placed_pool() is None
    assert ObjectMeta.from_body(bad).generation == 0
    assert ModelDeploymentStatus.from_body({}).to_patch({}) is None


def test_to_patch_writes_only_what_changed_and_leaves_other_owners_alone() -> None:
    st = ModelDeploymentStatus.from_body(BODY)
    patch = st.to_patch({"replicas": {"desired": 3, "ready": 1}, "placement": {"pool": "gpu-l4"}})
    assert patch == {"replicas": {"desired": 3}}  # "owned", "scaler" untouched
    assert st.to_patch({"replicas": {"desired": 2, "ready": 1}}) is None
    assert st.to_patch({"placement": {}}) == {"placement": {"pool": None}}
