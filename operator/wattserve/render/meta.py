"""Names, labels, annotations and owner references shared by every child object."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from wattserve import contract

APP_NAME: Final = "wattserve-serving"
MANAGER: Final = "wattserve"  # app.kubernetes.io/managed-by value and SSA field manager
OWNER_API_VERSION: Final = f"{contract.GROUP}/{contract.VERSION}"
OWNER_KIND: Final = "ModelDeployment"
ANNOTATION_SCRAPE: Final = "prometheus.io/scrape"
ANNOTATION_PORT: Final = "prometheus.io/port"
ANNOTATION_PATH: Final = "prometheus.io/path"
_DNS1035: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns the children."""

    name: str
    namespace: str
    uid: str


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def label_value(text: str) -> str:
    """A label value (<= 63 characters, alphanumeric at both ends); long ones are hashed."""
    if len(text) <= 63:
        return text
    return f"{text[:54].rstrip('-.')}-{_hash(text)}"


def service_name(md_name: str) -> str:
    """The Service name: the ModelDeployment's when it is a valid DNS-1035 label."""
    if len(md_name) <= 63 and _DNS1035.match(md_name):
        return md_name
    return f"ws-{md_name[:50].strip('-.')}-{_hash(md_name)}".replace(".", "-")


def selector_labels(md_name: str) -> dict[str, str]:
    """Labels that select a ModelDeployment's pods; immutable (no pool or engine in them)."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        contract.LABEL_K8S_MODEL_DEPLOYMENT: label_value(md_name),
    }


def child_labels(md_name: str, pool: str, engine: str) -> dict[str, str]:
    """Labels on every child object and every serving pod."""
    return selector_labels(md_name) | {
        "app.kubernetes.io/instance": label_value(md_name),
        "app.kubernetes.io/component": "serving",
        "app.kubernetes.io/part-of": "wattserve",
        contract.LABEL_K8S_MANAGED_BY: MANAGER,
        contract.LABEL_K8S_POOL: label_value(pool),
        contract.LABEL_K8S_ENGINE: label_value(engine),
    }


def scrape_annotations() -> dict[str, str]:
    return {
        ANNOTATION_SCRAPE: "true",
        ANNOTATION_PORT: str(contract.SERVING_PORT),
        ANNOTATION_PATH: contract.METRICS_PATH,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    """The controller reference: children are garbage-collected with the ModelDeployment."""
    return {
        "apiVersion": OWNER_API_VERSION,
        "kind": OWNER_KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(owner: Owner, name: str, labels: dict[str, str],
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(owner)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
