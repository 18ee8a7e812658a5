"""The desired children of a ModelDeployment, and which kinds a backend owns."""

from __future__ import annotations

from typing import Any, Final

from wattserve.api.types import Backend
from wattserve.render.deployment import render_deployment, render_service
from wattserve.render.inputs import RenderInputs
from wattserve.render.raynetwork import render_ray_network_policy
from wattserve.render.rayservice import render_rayservice

# (apiVersion, kind) of every child kind the operator may own.
CHILD_KINDS: Final[tuple[tuple[str, str], ...]] = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("ray.io/v1", "RayService"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)


def desired_children(inputs: RenderInputs) -> list[dict[str, Any]]:
    """Every object the backend needs, fully rendered (raises SpecError on a bad source)."""
    if inputs.md.spec.backend is Backend.RAYSERVICE:
        return [render_rayservice(inputs), render_ray_network_policy(inputs)]
    return [render_deployment(inputs), render_service(inputs)]
