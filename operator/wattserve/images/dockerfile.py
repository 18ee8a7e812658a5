"""Dockerfiles generated from image definitions (pure: a spec in, text out).

The committed Dockerfiles are this module's output (tests/images/ check that they are equal),
so Docker users, kind and the registry-less builder build the same definition. Stages:

- ``wheels`` (Python images): ``pip download --require-hashes`` of the lock's wheels, the
  compiled sdists (hash-checked) and the wattserve wheel;
- ``files`` (images with package_files): the locked wheel installed into a throw-away venv,
  then package_files.py copies the matching files out;
- the final stage: Debian packages, the wheels/files copied in, then
  :func:`wattserve.images.spec.install_commands` as one RUN, then user/env/entrypoint.
"""

from __future__ import annotations

import json
from typing import Final

from wattserve.images.spec import (
    COMPILED_WHEELS,
    DEBIAN_IMAGE,
    FILES_DIR,
    LOCK_IN_IMAGE,
    PROJECT_SOURCES,
    PROJECT_WHEELS,
    ROOT_PROJECT,
    WHEELS_DIR,
    ImageSpec,
    install_commands,
)

BUILD_VENV: Final = "/opt/build"
FILES_SCRIPT: Final = "operator/wattserve/images/package_files.py"


def _apt(packages: tuple[str, ...] | list[str]) -> list[str]:
    return ["# hadolint ignore=DL3008",
            "RUN apt-get update \\",
            " && apt-get install -y --no-install-recommends " + " ".join(packages) + " \\",
            " && rm -rf /var/lib/apt/lists/*"]


def _run(commands: list[str]) -> list[str]:
    lines = ["RUN " + commands[0] + (" \\" if len(commands) > 1 else "")]
    for i, cmd in enumerate(commands[1:], start=2):
        lines.append(" && " + cmd + (" \\" if i < len(commands) else ""))
    return lines


def _wheels_stage(spec: ImageSpec) -> list[str]:
    py = spec.python
    assert py is not None
    pip = f"{BUILD_VENV}/bin/pip"
    packages = ["python3", "python3-venv", "ca-certificates", *py.compile_debian]
    lines = ["FROM ${DEBIAN_IMAGE} AS wheels", *_apt(packages),
             f"RUN python3 -m venv {BUILD_VENV}",
             f"COPY {py.lock} {LOCK_IN_IMAGE}",
             "# Every wheel of the lock, hash-checked (--require-hashes); no resolution here.",
             f"RUN {pip} download --no-cache-dir --no-deps --only-binary :all: "
             f"--require-hashes -r {LOCK_IN_IMAGE} -d {WHEELS_DIR}"]
    if py.compile:
        env = " ".join(f"{k}={v}" for k, v in py.compile_env)
        lines += [f"COPY {py.compile} /tmp/compile.lock",
                  "# Packages without binary wheels: built from their hash-checked sdists.",
                  f"RUN {env + ' ' if env else ''}{pip} wheel --no-cache-dir --no-deps "
                  f"--require-hashes -r /tmp/compile.lock -w {COMPILED_WHEELS}"]
    if py.project == ROOT_PROJECT:
        lines += ["WORKDIR /src",
                  "COPY pyproject.toml README.md ./",
                  "COPY operator ./operator",
                  "COPY serving ./serving",
                  f"RUN {pip} wheel --no-cache-dir --no-deps . "
                  f"-w {PROJECT_WHEELS}"]
    elif py.project:
        lines += ["WORKDIR /src",
                  *(f"COPY {rel} ./{rel}" for rel in PROJECT_SOURCES[py.project]),
                  f"RUN {pip} wheel --no-cache-dir --no-deps ./{py.project} "
                  f"-w {PROJECT_WHEELS}"]
    return lines


def _files_stage(spec: ImageSpec) -> list[str]:
    pf = spec.package_files
    assert pf is not None
    return ["FROM ${DEBIAN_IMAGE} AS files", *_apt(["python3", "python3-venv", "ca-certificates"]),
            f"RUN python3 -m venv {BUILD_VENV}",
            f"COPY {pf.lock} /tmp/files.lock",
            f"COPY {FILES_SCRIPT} /tmp/package_files.py",
            f"RUN {BUILD_VENV}/bin/pip install --no-cache-dir --no-deps --require-hashes "
            "-r /tmp/files.lock \\",
            f" && {BUILD_VENV}/bin/python /tmp/package_files.py {pf.module} '{pf.glob}' "
            f"{FILES_DIR}"]


def render_dockerfile(spec: ImageSpec, base_ref: str = "") -> str:
    """The Dockerfile of ``spec``; ``base_ref`` is the image ``from:`` names (if any)."""
    name = f"{spec.repository}:{spec.tag}"
    out = ["# syntax=docker/dockerfile:1",
           f"# GENERATED from {spec.source} by `wattserve images dockerfile {spec.name}`;",
           "# edit the definition, not this file (tests/images/ check that they agree).",
           f"# {spec.description}" if spec.description else "#",
           "# Build from the repository root:",
           f"#   docker build -f {spec.dockerfile} -t {name} ."]
    if spec.base:
        out += [f"ARG BASE_IMAGE={base_ref}"]
    out += [f"ARG DEBIAN_IMAGE={DEBIAN_IMAGE}", ""]
    if spec.python is not None:
        out += [*_wheels_stage(spec), ""]
    if spec.package_files is not None:
        out += [*_files_stage(spec), ""]
    if spec.base:
        out += ["FROM ${BASE_IMAGE}", "USER root"]
    else:
        out += ["FROM ${DEBIAN_IMAGE}"]
        if spec.debian:
            out += _apt(spec.debian)
    if spec.python is not None:
        out += [f"COPY --from=wheels {WHEELS_DIR} {WHEELS_DIR}"]
    if spec.package_files is not None:
        out += [f"COPY --from=files {FILES_DIR} {FILES_DIR}"]
    commands = install_commands(spec)
    if commands:
        out += _run(commands)
    if spec.env:
        out += ["ENV " + " \\\n    ".join(f"{k}={v}" for k, v in spec.env)]
    if spec.user is not None:
        out += [f"USER {spec.user[1]}:{spec.user[1]}"]
    if spec.workdir:
        out += [f"WORKDIR {spec.workdir}"]
    out += [f"EXPOSE {port}" for port in spec.expose]
    if spec.entrypoint:
        out += ["ENTRYPOINT " + json.dumps(list(spec.entrypoint))]
    return "\n".join(out) + "\n"
