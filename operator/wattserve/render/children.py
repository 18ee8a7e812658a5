"""The desired children of a ModelDeployment, and which kinds a backend owns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from wattserve.api.types import Backend
from wattserve.render.deployment import render_deployment, render_service
from wattserve.render.inputs import RenderInputs
from wattserve.render.raynetwork import render_ray_network_policy
from wattserve.render.rayservice import render_rayservice


@dataclass(frozen=True)
class ChildKind:
    """A kind of object the operator owns (or watches, for pods), as the API names it."""

    api_version: str  # "apps/v1", "v1" (core)
    kind: str
    plural: str
    # A label selector of our own objects of this kind, beyond app.kubernetes.io/managed-by
    # (watched and listed with both): "" when that label alone tells them apart.
    selector: str = ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]  # "" for the core group

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


DEPLOYMENT: Final = ChildKind("apps/v1", "Deployment", "deployments")
SERVICE: Final = ChildKind("v1", "Service", "services")
RAYSERVICE: Final = ChildKind("ray.io/v1", "RayService", "rayservices")
# Our EndpointSlices (the activator's route) say who manages them; the EndpointSlice
# controller's slices of our Services copy the Services' labels but name the controller, and
# are neither watched nor listed (one watch event and one cached object fewer per model).
SLICE_MANAGER: Final = "operator.wattserve.dev"
ENDPOINTSLICE: Final = ChildKind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices",
                                 f"endpointslice.kubernetes.io/managed-by={SLICE_MANAGER}")
NETWORKPOLICY: Final = ChildKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
POD: Final = ChildKind("v1", "Pod", "pods")
# Every kind the operator may own, by kind: the one table the runtime lists, watches,
# applies and deletes from (EndpointSlice: the activator's route of a model at zero;
# NetworkPolicy: the Ray head's dashboard lock-down, backend rayservice).
CHILD_KINDS: Final[Mapping[str, ChildKind]] = {
    k.kind: k for k in (DEPLOYMENT, SERVICE, RAYSERVICE, NETWORKPOLICY, ENDPOINTSLICE)}


def desired_children(inputs: RenderInputs) -> list[dict[str, Any]]:
    """Every object the backend needs, fully rendered (raises SpecError on a bad source)."""
    if inputs.md.spec.backend is Backend.RAYSERVICE:
        return [render_rayservice(inputs), render_ray_network_policy(inputs)]
    return [render_deployment(inputs), render_service(inputs)]
