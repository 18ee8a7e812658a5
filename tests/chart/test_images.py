"""Image references: repository:tag, or repository@digest when a digest is set (the tag is
then ignored); the activator inherits the operator's image field by field."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import RenderError, render

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "0123456789abcdef" * 4


def _deployments(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]:
            d["spec"]["template"]["spec"]["containers"][0]
            for d in render(values) if d["kind"] == "Deployment"}


def _env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in c["env"]}


def test_digests_give_repository_at_digest_and_ignore_the_tag() -> None:
    c = _deployments({
        "operator": {"image": {"repository": "reg/op", "tag": "1.0", "digest": D1,
                               "pullPolicy": "IfNotPresent"}},
        "serving": {"image": {
            "cpu": {"repository": "reg/cpu", "tag": "c", "digest": D2,
                    "pullPolicy": "IfNotPresent"},
            "gpu": {"repository": "reg/gpu", "tag": "g", "digest": D1,
                    "pullPolicy": "IfNotPresent"},
            "rayCpu": {"repository": "reg/ray", "tag": "r", "digest": D2}}},
    })["operator"]
    assert c["image"] == f"reg/op@{D1}"
    env = _env(c)
    assert env["WATTSERVE_SERVING_IMAGE_CPU"] == f"reg/cpu@{D2}"
    assert env["WATTSERVE_SERVING_IMAGE_GPU"] == f"reg/gpu@{D1}"
    assert env["WATTSERVE_SERVING_IMAGE_RAY_CPU"] == f"reg/ray@{D2}"


def test_no_digest_keeps_repository_colon_tag() -> None:
    c = _deployments({})["operator"]
    assert c["image"] == "ghcr.io/wattserve/wattserve-operator:0.1.0"


@pytest.mark.parametrize("digest", ["sha256:abc", "a" * 64, "sha256:" + "A" * 64,
                                    "sha512:" + "a" * 64])
def test_a_malformed_digest_is_refused_by_the_schema(digest: str) -> None:
    with pytest.raises(RenderError, match="/operator/image/digest"):
        render({"operator": {"image": {"digest": digest}}})


def test_the_activator_inherits_the_operator_image_field_by_field() -> None:
    op = {"image": {"repository": "reg/op", "tag": "1.0", "digest": "", "pullPolicy": "Never"}}
    c = _deployments({"operator": op, "activator": {"enabled": True}})["activator"]
    assert (c["image"], c["imagePullPolicy"]) == ("reg/op:1.0", "Never")
    c = _deployments({"operator": op, "activator": {"enabled": True, "image": {
        "repository": "", "tag": "2.0", "pullPolicy": "Always"}}})["activator"]
    assert (c["image"], c["imagePullPolicy"]) == ("reg/op:2.0", "Always")
    c = _deployments({"operator": {"image": {**op["image"], "digest": D1}},
                      "activator": {"enabled": True}})["activator"]
    assert c["image"] == f"reg/op@{D1}"
    c = _deployments({"operator": op, "activator": {"enabled": True, "image": {
        "repository": "reg/act", "tag": "", "digest": D2, "pullPolicy": ""}}})["activator"]
    assert (c["image"], c["imagePullPolicy"]) == (f"reg/act@{D2}", "Never")
