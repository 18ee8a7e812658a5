"""What the API server accepts for names and labels (apimachinery's validation rules)."""

from __future__ import annotations

import re
from typing import Any

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

# Kinds whose name must be a DNS-1035 label (Services) or a DNS-1123 label; everything else
# here is a DNS-1123 subdomain (RBAC names are path segments; checked as subdomains, stricter).
DNS1035_KINDS = {"Service"}
DNS1123_LABEL_KINDS = {"Namespace"}


def name_problems(doc: dict[str, Any]) -> list[str]:
    """Why the API server would refuse this object's name, namespace or labels."""
    meta = doc.get("metadata") or {}
    name, kind = meta.get("name"), doc.get("kind")
    tag = f"{kind}/{name!r}"
    out: list[str] = []
    if not isinstance(name, str):
        return [f"{tag}: name is not a string"]
    if kind in DNS1035_KINDS:
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            out.append(f"{tag}: not a DNS-1035 label of <= 63 characters (len {len(name)})")
    elif kind in DNS1123_LABEL_KINDS:
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            out.append(f"{tag}: not a DNS-1123 label")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        out.append(f"{tag}: not a DNS-1123 subdomain")
    ns = meta.get("namespace")
    if ns is not None and (not isinstance(ns, str) or len(ns) > 63
                           or not DNS1123_LABEL.match(ns)):
        out.append(f"{tag}: namespace {ns!r} is not a DNS-1123 label string")
    out += label_problems(meta.get("labels"), f"{tag} labels")
    spec = doc.get("spec") or {}
    if kind == "Deployment":
        out += label_problems(spec["template"]["metadata"].get("labels"), f"{tag} pod labels")
        out += label_problems(spec["selector"]["matchLabels"], f"{tag} selector")
    if kind == "Service":
        out += label_problems(spec.get("selector"), f"{tag} selector")
    return out


def label_problems(labels: Any, where: str) -> list[str]:
    out = []
    for key, value in (labels or {}).items():
        prefix, _, name = str(key).rpartition("/")
        if not LABEL_NAME.match(name) or len(name) > 63 or (
                prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix))):
            out.append(f"{where}: bad label key {key!r}")
        if not isinstance(value, str):
            out.append(f"{where}: label {key} value is not a string: {value!r}")
        elif len(value) > 63 or not LABEL_VALUE.match(value):
            out.append(f"{where}: label {key}={value!r} is not a valid label value")
    return out
