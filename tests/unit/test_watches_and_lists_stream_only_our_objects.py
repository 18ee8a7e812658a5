"""The operator's watches and LISTs select only its own objects, server-side.

kopf's label selectors were keyed by strings such as "apps/deployments", which kopf matched
with no resource: every Deployment, EndpointSlice, NetworkPolicy and RayService in reach was
streamed and dropped client-side. And the EndpointSlice controller gives each of our
Services a slice that copies the Service's labels (app.kubernetes.io/managed-by=wattserve
included); our own slices (the activator's route at zero) say who manages them, and the
watch and the LISTs select on that too."""

from __future__ import annotations

import kopf
from wattserve.controller.app import kopf_settings
from wattserve.controller.config import OperatorConfig
from wattserve.controller.reconciler import CHILD_SELECTOR, selector_of
from wattserve.reconcile.zero import ActivatorEndpoints, activator_slice
from wattserve.render.children import CHILD_KINDS, ENDPOINTSLICE, POD, ChildKind
from wattserve.render.meta import Owner, child_labels, service_name


def _selects(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selector, as the API server reads ``k=v,k=v``."""
    terms = [term.split("=", 1) for term in selector.split(",")]
    return all(labels.get(key) == value for key, value in terms)


OWNER = Owner(name="chat", namespace="team-a", uid="u-1")
SERVICE_LABELS = child_labels("chat", "cpu-general", "llamacpp")


def test_our_activator_slice_is_selected() -> None:
    ours = activator_slice(OWNER, SERVICE_LABELS, ActivatorEndpoints(("10.0.0.7",)))
    assert _selects(selector_of(ENDPOINTSLICE), ours["metadata"]["labels"])


def test_the_endpointslice_controllers_copy_of_our_services_labels_is_not() -> None:
    controllers = SERVICE_LABELS | {
        "kubernetes.io/service-name": service_name("chat"),
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert _selects(CHILD_SELECTOR, controllers)  # what used to stream it in
    assert not _selects(selector_of(ENDPOINTSLICE), controllers)


def test_every_other_kind_keeps_the_managed_by_selector_alone() -> None:
    for kind in (*CHILD_KINDS.values(), POD):
        if kind is not ENDPOINTSLICE:
            assert selector_of(kind) == CHILD_SELECTOR


def _kopf_resource(kind: ChildKind) -> kopf.Resource:
    return kopf.Resource(group=kind.group, version=kind.version, plural=kind.plural,
                         kind=kind.kind, singular=kind.kind.lower(), namespaced=True,
                         preferred=True, verbs=["list", "watch"])


def test_kopf_streams_every_kind_with_the_selector_the_lists_use() -> None:
    """kopf's own matching of its settings to each resource: the watch of every child kind
    and of pods is filtered server-side (a string key such as "apps/deployments" matched
    no resource: every Deployment and EndpointSlice in reach was streamed)."""
    settings = kopf_settings(OperatorConfig(standalone=True))
    for kind in (*CHILD_KINDS.values(), POD):
        collected = list(settings.watching.label_selectors.collect(_kopf_resource(kind)))
        assert collected == [selector_of(kind)], kind.kind
