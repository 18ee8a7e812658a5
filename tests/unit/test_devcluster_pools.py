"""The dev cluster's pools file is refused in one line naming the file and the field before
anything is built or started: capacities are positive Kubernetes quantities, a node has at
most 64 GPUs, and a binary file or an integer too long to convert is no traceback. (No
cluster starts here: every case fails validation.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from wattserve.devcluster import cli
from wattserve.devcluster.nodepools import PoolConfigError, load_pools


def _pools(capacity: dict[str, object], gpu: dict[str, object] | None = None) -> str:
    pool: dict[str, object] = {"name": "gpu-a", "count": 2, "capacity": capacity}
    if gpu is not None:
        pool["gpu"] = gpu
    return yaml.safe_dump({"pools": [pool]})


GOOD = {"cpu": "16", "memory": "64Gi", "pods": "110"}


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were validation to let a file through, `up` fails here instead of building or
    starting a cluster."""
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("dev-cluster up went past the pools file's validation")
    for module, name in ((cli.control_plane, "up"), (cli.build, "build_all"),
                         (cli.components, "missing_binaries")):
        monkeypatch.setattr(module, name, refuse)


def test_the_shipped_pools_and_quantities_with_suffixes_are_accepted(tmp_path: Path) -> None:
    assert [pool.name for pool in load_pools()] == ["cpu-general", "gpu-l4", "gpu-h100"]
    path = tmp_path / "pools.yaml"
    path.write_text(_pools({"cpu": "15500m", "memory": "1.5Ti", "pods": 110},
                           {"count": 64, "product": "NVIDIA-L4"}))
    (pool,) = load_pools(path)
    assert pool.capacity == {"cpu": "15500m", "memory": "1.5Ti", "pods": "110",
                             "nvidia.com/gpu": "64"}


@pytest.mark.parametrize(("capacity", "gpu", "field"), [
    ({**GOOD, "cpu": "-5"}, None, "pools[0].capacity.cpu: must be a positive Kubernetes "
                                  "quantity such as '16', '500m' or '64Gi', got '-5'"),
    ({**GOOD, "memory": "lots"}, None, "pools[0].capacity.memory: must be a positive"),
    ({**GOOD, "cpu": 0}, None, "pools[0].capacity.cpu: "),
    ({**GOOD, "pods": True}, None, "pools[0].capacity.pods: "),
    ({**GOOD, "memory": None}, None, "pools[0].capacity.memory: "),
    ({**GOOD, "memory": "64K"}, None, "pools[0].capacity.memory: "),  # the API server's 400
    (GOOD, {"count": 10**18, "product": "NVIDIA-L4"},
     "pools[0].gpu.count: must be an integer 1..64 (GPUs of one node), got 1000000000000000000"),
    (GOOD, {"count": 65, "product": "NVIDIA-L4"}, "pools[0].gpu.count: "),
])
def test_a_capacity_that_is_no_quantity_or_endless_gpus_are_refused_by_field(
        tmp_path: Path, capacity: dict[str, object], gpu: dict[str, object] | None,
        field: str) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text(_pools(capacity, gpu))
    with pytest.raises(PoolConfigError) as err:
        load_pools(path)
    assert str(err.value).startswith(f"{path}: {field}"), str(err.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe\x00junk\x80", "not a UTF-8 text file"),
    (b"pools:\n  - name: a\n    count: " + b"9" * 5000 + b"\n",
     "line 3: count: an integer of 5000 characters is out of range"),
    (b"pools:\n  - name: a\n    count: 1\n    count: 2\n",
     "not valid YAML at line 4: duplicate key 'count'"),
])
@pytest.mark.usefixtures("nothing_starts")
def test_an_unreadable_pools_file_is_one_line_exit_2_before_anything_starts(
        tmp_path: Path, content: bytes, message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pools.yaml"
    path.write_bytes(content)
    state = tmp_path / "state"
    assert cli.run(["--state-dir", str(state), "up", "--no-build", "--pools", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"dev-cluster: {path}: {message}\n"
    assert not state.exists()


@pytest.mark.usefixtures("nothing_starts")
def test_a_bad_capacity_is_refused_by_the_cli_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text(_pools({**GOOD, "cpu": "-5", "memory": "lots"}))
    state = tmp_path / "state"
    assert cli.run(["--state-dir", str(state), "up", "--no-build", "--pools", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: pools[0].capacity.cpu: " in err
    assert not state.exists()
