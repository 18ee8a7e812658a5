"""What an image build depends on, hashed: the cache key of its archive.

Everything that can change the image's content goes in: the builder's version, the
definition, the locks, the project sources (for images holding the wattserve wheel), the
package_files script, the Debian package list and suite, and the parent image's hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

from wattserve.images.spec import DEBIAN_SUITE, ImageSpec

BUILDER_VERSION: Final = "1"  # bump when the builder's output changes for the same inputs
_SKIP_DIRS: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", "build", "dist"})
_SKIP_SUFFIXES: Final = (".pyc", ".pyo")


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        raise FileNotFoundError(f"image input {path} does not exist")
    for child in sorted(path.iterdir()):
        if child.is_dir():
            if child.name not in _SKIP_DIRS and not child.name.endswith(".egg-info"):
                yield from _files(child)
        elif child.is_file() and not child.name.endswith(_SKIP_SUFFIXES):
            yield child


def base_key(packages: tuple[str, ...]) -> str:
    """The cache key of a Debian base rootfs: suite and sorted package list."""
    text = f"builder={BUILDER_VERSION}\nsuite={DEBIAN_SUITE}\n" + "\n".join(sorted(packages))
    return hashlib.sha256(text.encode()).hexdigest()


def inputs_hash(name: str, specs: Mapping[str, ImageSpec], root: Path) -> str:
    """sha256 over every input of image ``name`` (and, recursively, of its parent)."""
    spec = specs[name]
    digest = hashlib.sha256()
    digest.update(f"builder={BUILDER_VERSION}\nbase={base_key(spec.debian)}\n".encode())
    if spec.base:
        digest.update(f"parent={inputs_hash(spec.base, specs, root)}\n".encode())
    for rel in spec.input_paths():
        for path in _files(root / rel):
            digest.update(f"{path.relative_to(root)}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def compile_key(lock_text: str, python_tag: str, env: tuple[tuple[str, str], ...]) -> str:
    """Cache key of wheels compiled from a lock's sdists: the lock (its sdist hashes), the
    Python version and platform they are built for, and the build flags."""
    text = "\n".join([lock_text, python_tag, *(f"{k}={v}" for k, v in sorted(env))])
    return hashlib.sha256(text.encode()).hexdigest()
