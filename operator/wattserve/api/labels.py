"""Label keys and values as the API server judges them (pure). A nodeSelector or toleration
the API server would refuse on a pod must be refused here, naming the field, not surface
later as a failed Deployment."""

from __future__ import annotations

import re
from typing import Final

_NAME: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_PREFIX: Final = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
NAME_MAX: Final = 63
PREFIX_MAX: Final = 253


def is_dns_label(text: str) -> bool:
    """A DNS-1123 label: a namespace, most object names."""
    return len(text) <= NAME_MAX and re.fullmatch(_DNS_LABEL, text) is not None


def is_dns_subdomain(text: str) -> bool:
    """A DNS-1123 subdomain: the names of most other objects (a Lease, a label prefix)."""
    return len(text) <= PREFIX_MAX and _PREFIX.fullmatch(text) is not None


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a qualified name (``[prefix/]name``), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "the prefix before '/' must not be empty"
    if slash and (len(prefix) > PREFIX_MAX or not _PREFIX.fullmatch(prefix)):
        return (f"prefix {prefix!r} must be a DNS subdomain (lower-case alphanumerics, '-' "
                f"and '.', at most {PREFIX_MAX} characters)")
    if len(name) > NAME_MAX or not _NAME.fullmatch(name):
        return (f"name {name!r} must be 1-{NAME_MAX} alphanumerics, '-', '_' or '.', "
                "beginning and ending with an alphanumeric")
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a label value (empty, or a name as above), or None."""
    if value and (len(value) > NAME_MAX or not _NAME.fullmatch(value)):
        return (f"must be at most {NAME_MAX} alphanumerics, '-', '_' or '.', beginning and "
                "ending with an alphanumeric (or empty)")
    return None


def extended_resource_problem(name: str) -> str | None:
    """Why ``name`` cannot count a node's accelerators, or None. A pod requests devices by
    an extended resource: a qualified name whose domain is outside ``kubernetes.io`` (e.g.
    ``nvidia.com/gpu``, ``amd.com/gpu``). ``cpu``, ``memory`` and the other built-in
    resources would silently replace what the plan requests."""
    if "/" not in name:
        return ("must be an extended resource with a domain prefix, e.g. nvidia.com/gpu "
                "(cpu, memory and the other built-in resources cannot count accelerators)")
    if "kubernetes.io/" in name or name.startswith("requests."):
        return ("must be an extended resource outside the kubernetes.io domain and not a "
                "quota name (requests.*), e.g. nvidia.com/gpu")
    return label_key_problem(name)
