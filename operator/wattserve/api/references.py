"""Container image references, for ``oci://`` model sources (pure; no I/O).

The grammar is the distribution reference one: ``[domain[:port]/]path[:tag][@digest]``
with lowercase path components. ``OCI_SOURCE_PATTERN`` is the same grammar as a regular
expression both Python and the API server (RE2, in the CRD's ``pattern``) accept.
"""

from __future__ import annotations

import re
from typing import Final

_PATH_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG: Final = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE: Final = (rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
                          rf"(?::{_TAG})?(?:@{_DIGEST})?")
MAX_REFERENCE_LENGTH: Final = 512
OCI_SCHEME: Final = "oci://"
OCI_SOURCE_PATTERN: Final = f"oci://{IMAGE_REFERENCE}"
_REFERENCE: Final = re.compile(IMAGE_REFERENCE)


def oci_reference_problem(source: str) -> str | None:
    """Why ``oci://...`` is not a usable image reference, or None when it is."""
    ref = source.removeprefix(OCI_SCHEME)
    if not ref:
        return "oci:// needs an image reference, e.g. oci://registry.example/models/name:tag"
    if len(ref) > MAX_REFERENCE_LENGTH:
        return f"oci:// image reference is longer than {MAX_REFERENCE_LENGTH} characters"
    if not _REFERENCE.fullmatch(ref):
        return (f"oci://{ref!s:.80} is not an image reference "
                "([registry[:port]/]repository[:tag][@sha256:digest], lowercase repository)")
    return None
