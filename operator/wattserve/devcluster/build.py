"""Build the dev-cluster binaries from Go modules, once, into a versioned cache.

``go build`` runs in a copy of ``gomod/<component>/`` under ``$WATTSERVE_CACHE/src/`` (so an
installed package is never written to), with ``-trimpath -ldflags "-s -w ..."``.  Binaries
land in ``$WATTSERVE_CACHE/bin/<component>-<version>/`` together with ``BUILD.json``
(versions, Go version, seconds taken).  Every build is also appended to
``$WATTSERVE_CACHE/bin/build-times.json`` so the first (cold) build time stays on record.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from wattserve.devcluster.components import COMPONENTS, Component, cache_dir

Printer = Callable[[str], None]
PROGRESS_EVERY_S = 30.0
BUILD_TIMEOUT_S = 3 * 3600.0


class BuildError(RuntimeError):
    """A component failed to build; the message names it and the log file."""


@dataclass(frozen=True)
class BuildResult:
    component: str
    version: str
    bin_dir: Path
    seconds: float
    cached: bool


def _fmt(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def go_env() -> dict[str, str]:
    """Environment for ``go``: the local toolchain unless the caller chose one, and
    ``-mod=readonly``: go.mod/go.sum are complete (``tool`` directives + ``go mod tidy``), so
    the build uses exactly the pinned versions and never resolves ``@latest`` behind our back
    (``-mod=mod`` did exactly that on a fresh module cache).  A ``-mod=`` in ``$GOFLAGS`` wins.
    """
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    flags = env.get("GOFLAGS", "")
    if "-mod=" not in flags:
        flags = f"{flags} -mod=readonly".strip()
    env["GOFLAGS"] = flags
    env.setdefault("CGO_ENABLED", "0")
    return env


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("`go` not found on PATH: install Go >= 1.26 to build the dev cluster")
    out = subprocess.run(
        [go, "version"], capture_output=True, text=True, check=True, timeout=60, env=go_env()
    )
    return out.stdout.strip()


def build_key(comp: Component) -> str:
    """Digest of everything that shapes the binaries besides the version in the dir name."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((comp.gomod_dir / name).read_bytes())
    digest.update("\0".join([*comp.ldflags, *comp.packages.values()]).encode())
    return digest.hexdigest()[:16]


def is_built(comp: Component, cache: Path) -> bool:
    """Binaries present and built from the current go.mod/go.sum/ldflags."""
    bin_dir = comp.bin_dir(cache)
    try:
        stamp = json.loads((bin_dir / "BUILD.json").read_text())
    except (OSError, ValueError):
        return False
    if stamp.get("key") != build_key(comp):
        return False
    return all(os.access(bin_dir / b, os.X_OK) for b in comp.binaries)


@contextmanager
def _build_lock(cache: Path) -> Iterator[None]:
    """One build at a time per cache (parallel test sessions share it)."""
    (cache / "bin").mkdir(parents=True, exist_ok=True)
    with open(cache / "bin" / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _record_time(cache: Path, entry: dict[str, object]) -> None:
    path = cache / "bin" / "build-times.json"
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        history = []
    history.append(entry)
    path.write_text(json.dumps(history, indent=2) + "\n")


def _run_go_build(comp: Component, cache: Path, log_path: Path, echo: Printer) -> Path:
    src = cache / "src" / f"{comp.name}-{comp.version}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("go.mod", "go.sum"):
        shutil.copy2(comp.gomod_dir / name, src / name)
    out_dir = src / "out"
    out_dir.mkdir()
    ldflags = " ".join(["-s", "-w", *comp.ldflags])
    cmd = ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", f"{out_dir}/"]
    cmd += list(comp.packages.values())
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    start = time.monotonic()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(
            nice + cmd, cwd=src, env=go_env(), stdout=log, stderr=subprocess.STDOUT
        )
        next_note = start + PROGRESS_EVERY_S
        while proc.poll() is None:
            now = time.monotonic()
            if now - start > BUILD_TIMEOUT_S:
                proc.kill()
                proc.wait()
                raise BuildError(f"{comp.name}: go build exceeded {_fmt(BUILD_TIMEOUT_S)}")
            if now >= next_note:
                echo(f"  ... {comp.name} still building ({_fmt(now - start)} elapsed)")
                next_note = now + PROGRESS_EVERY_S
            time.sleep(1.0)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        raise BuildError(
            f"{comp.name} {comp.version}: go build failed (exit {proc.returncode}); "
            f"log: {log_path}\n" + "\n".join(tail)
        )
    return out_dir


def _go_default_name(package: str) -> str:
    """The file name ``go build -o DIR/`` gives a main package (``.../server/v3`` -> server)."""
    parts = package.split("/")
    last = parts[-1]
    if len(parts) > 1 and last.startswith("v") and last[1:].isdigit():
        return parts[-2]
    return last


def _name_binaries(comp: Component, out_dir: Path) -> None:
    for binary, package in comp.packages.items():
        built = out_dir / _go_default_name(package)
        if binary != built.name and built.exists():
            built.rename(out_dir / binary)
        if not os.access(out_dir / binary, os.X_OK):
            raise BuildError(f"{comp.name}: go build produced no {binary} in {out_dir}")


def build_component(
    comp: Component, cache: Path, echo: Printer, force: bool = False
) -> BuildResult:
    bin_dir = comp.bin_dir(cache)
    if not force and is_built(comp, cache):
        echo(f"[build] {comp.name} {comp.version}: cached in {bin_dir}")
        return BuildResult(comp.name, comp.version, bin_dir, 0.0, cached=True)
    log_path = cache / "bin" / f"{comp.name}-{comp.version}.build.log"
    echo(
        f"[build] {comp.name} {comp.version}: building {', '.join(comp.binaries)} (log: {log_path})"
    )
    start = time.monotonic()
    out_dir = _run_go_build(comp, cache, log_path, echo)
    seconds = time.monotonic() - start
    _name_binaries(comp, out_dir)
    staging = bin_dir.with_name(bin_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    out_dir.rename(staging)
    stamp = {
        "component": comp.name,
        "version": comp.version,
        "key": build_key(comp),
        "binaries": comp.binaries,
        "go": go_version(),
        "seconds": round(seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (staging / "BUILD.json").write_text(json.dumps(stamp, indent=2) + "\n")
    shutil.rmtree(bin_dir, ignore_errors=True)
    staging.rename(bin_dir)
    _record_time(cache, stamp)
    echo(f"[build] {comp.name} {comp.version}: done in {_fmt(seconds)}")
    return BuildResult(comp.name, comp.version, bin_dir, seconds, cached=False)


def build_all(
    cache: Path | None = None,
    echo: Printer = print,
    only: list[str] | None = None,
    force: bool = False,
) -> list[BuildResult]:
    """Build every component not built yet; return what was done (cached ones cost 0 s)."""
    root = cache or cache_dir()
    selected = [c for c in COMPONENTS if only is None or c.name in only]
    missing = [c for c in selected if force or not is_built(c, root)]
    if missing:
        echo(f"[build] {go_version()}; cache {root}")
    results: list[BuildResult] = []
    start = time.monotonic()
    with _build_lock(root):
        for comp in selected:
            results.append(build_component(comp, root, echo, force=force))
    built = [r for r in results if not r.cached]
    if built:
        echo(f"[build] built {len(built)} component(s) in {_fmt(time.monotonic() - start)}")
    for r in results:
        echo(f"[build] {r.component:<10} {r.version:<9} {r.bin_dir}")
    return results
