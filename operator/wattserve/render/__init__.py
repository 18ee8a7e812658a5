"""wattserve.render: ModelDeployment + pool + plan -> Kubernetes objects (pure, no I/O).

Nothing here imports kopf or the Kubernetes client; every function returns plain dicts.
"""

from wattserve.render.children import CHILD_KINDS, ChildKind, desired_children
from wattserve.render.deployment import render_deployment, render_service
from wattserve.render.inputs import RenderInputs
from wattserve.render.meta import (
    MANAGER,
    Owner,
    child_labels,
    label_value,
    owner_reference,
    selector_labels,
    service_name,
)
from wattserve.render.rayservice import render_rayservice, serve_config
from wattserve.render.settings import RenderSettings, SettingsError, settings_from_env
from wattserve.render.sources import ModelStorage, model_storage

__all__ = [
    "CHILD_KINDS",
    "MANAGER",
    "ChildKind",
    "ModelStorage",
    "Owner",
    "RenderInputs",
    "RenderSettings",
    "SettingsError",
    "child_labels",
    "desired_children",
    "label_value",
    "model_storage",
    "owner_reference",
    "render_deployment",
    "render_rayservice",
    "render_service",
    "selector_labels",
    "serve_config",
    "service_name",
    "settings_from_env",
]
