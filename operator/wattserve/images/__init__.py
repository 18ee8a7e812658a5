"""Container images from one definition each: Dockerfiles for Docker/kind, and a
registry-less builder + containerd import for this machine's real node (docs/images.md).

Public API (the dev cluster's real node calls :func:`ensure_images`):

- :func:`load_definitions` -> {name: ImageSpec}
- :func:`build_images` (names) -> list[Built]   (cached by a hash of all inputs)
- :func:`ensure_images` (socket, names) -> list[str]  (built if needed, imported if absent)
"""

from wattserve.images.build import Builder, BuildError, Built, missing_tools
from wattserve.images.containerd import (
    NODE_IMAGES,
    ContainerdError,
    build_images,
    ensure_images,
    image_digests,
    import_archive,
)
from wattserve.images.spec import DefinitionError, ImageSpec, load_definitions

__all__ = [
    "NODE_IMAGES",
    "BuildError",
    "Builder",
    "Built",
    "ContainerdError",
    "DefinitionError",
    "ImageSpec",
    "build_images",
    "ensure_images",
    "image_digests",
    "import_archive",
    "load_definitions",
    "missing_tools",
]
