"""Built archives into a containerd (``ctr images import``), and the one call the dev
cluster's real node needs: :func:`ensure_images`.

``ensure_images(socket, names)`` builds each image if its archive is not cached (a hash of
all inputs), and imports it into the containerd at ``socket`` (namespace ``k8s.io``, the
CRI's) unless that containerd already has the image under its ref with the same manifest
digest. It returns the refs, e.g. ``ghcr.io/wattserve/wattserve-operator:0.1.0``; pods use
them with ``imagePullPolicy: IfNotPresent`` or ``Never``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from wattserve.images.build import Builder, Built, Log
from wattserve.images.spec import ImageSpec, load_definitions

K8S_NAMESPACE: Final = "k8s.io"
# What the real node needs: the operator, the CPU serving image (the chart's defaults), the
# variant with SmolLM2 inside (gguf:// example) and the SmolLM2 model image (oci:// example).
NODE_IMAGES: Final = ("operator", "serving-cpu", "serving-cpu-smollm2", "model-smollm2")
IMPORT_TIMEOUT_S: Final = 600


class ContainerdError(RuntimeError):
    """ctr failed; the message has the command and its output."""


def _ctr(socket: Path, namespace: str, *args: str, timeout: float = 60) -> str:
    ctr = shutil.which("ctr")
    if ctr is None:
        raise ContainerdError("ctr not found (Debian package containerd)")
    cmd = [ctr, "--address", str(socket), "--namespace", namespace, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ContainerdError(f"`ctr {' '.join(args[:3])}` timed out after {timeout:.0f}s") \
            from exc
    if proc.returncode != 0:
        raise ContainerdError(f"`ctr {' '.join(args[:3])}` exited {proc.returncode}: "
                              f"{(proc.stderr or proc.stdout).strip()[-600:]}")
    return proc.stdout


def image_digests(socket: Path, namespace: str = K8S_NAMESPACE) -> dict[str, str]:
    """{ref: target digest} of the images the containerd at ``socket`` has."""
    out = _ctr(socket, namespace, "images", "ls")
    digests: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[2].startswith("sha256:"):
            digests[fields[0]] = fields[2]
    return digests


def archive_digest(archive: Path) -> str:
    """The manifest digest an OCI archive's index names (what ctr lists after import)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("./index.json") or tar.extractfile("index.json")
        if member is None:
            raise ContainerdError(f"{archive}: no index.json")
        index = json.load(member)
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        raise ContainerdError(f"{archive}: expected one manifest, found {len(manifests)}")
    return str(manifests[0]["digest"])


def import_archive(socket: Path, archive: Path, spec: ImageSpec,
                   namespace: str = K8S_NAMESPACE) -> str:
    """``ctr images import`` of one archive under ``spec.ref``; returns the ref."""
    _ctr(socket, namespace, "images", "import", "--base-name", spec.repository, str(archive),
         timeout=IMPORT_TIMEOUT_S)
    got = image_digests(socket, namespace).get(spec.ref)
    want = archive_digest(archive)
    if got != want:
        raise ContainerdError(f"after import, {spec.ref} is {got or 'absent'}, wanted {want}")
    return spec.ref


def build_images(names: Iterable[str], log: Log | None = None, cache: Path | None = None,
                 root: Path | None = None) -> list[Built]:
    """Build (or take from the cache) each named image; parents first."""
    builder = Builder(load_definitions(), root=root, cache=cache, log=log)
    return [builder.build(name) for name in names]


def ensure_images(socket: Path, names: Iterable[str] = NODE_IMAGES, *,
                  namespace: str = K8S_NAMESPACE, log: Log | None = None,
                  cache: Path | None = None) -> list[str]:
    """Make the named images present in the containerd at ``socket``; returns their refs.

    Builds what is not cached, imports what that containerd lacks or has at another digest.
    Raises BuildError / ContainerdError with a one-line reason first.
    """
    specs = load_definitions()
    builder = Builder(specs, cache=cache, log=log)
    present = image_digests(socket, namespace)
    refs = []
    for name in names:
        built = builder.build(name)
        spec = specs[name]
        if present.get(spec.ref) == archive_digest(built.archive):
            builder.log(name, f"{spec.ref} already in containerd")
        else:
            builder.log(name, f"importing {spec.ref} into {socket}")
            import_archive(socket, built.archive, spec, namespace)
        refs.append(spec.ref)
    return refs
