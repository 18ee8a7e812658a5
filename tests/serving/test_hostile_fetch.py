"""The model fetcher against hostile sources, buckets and shared caches.

huggingface_hub and boto3 are stand-ins here (no network can reach a hub or a bucket from
this machine); each writes what the real client would for the listed objects.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from wattserve_serving import fetch


def _stand_in_hub(monkeypatch: pytest.MonkeyPatch, calls: list[dict[str, Any]],
                  content: bytes = b"weights") -> None:
    module = types.ModuleType("huggingface_hub")

    def snapshot_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        for name in kwargs["allow_patterns"] or ["model.gguf"]:
            Path(kwargs["local_dir"], name).write_bytes(content)
        return str(kwargs["local_dir"])

    module.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)


def _stand_in_boto3(monkeypatch: pytest.MonkeyPatch, keys: list[str], size: int = 3) -> None:
    class Client:
        def get_paginator(self, _: str) -> Any:
            class Pages:
                def paginate(self, **_: Any) -> list[dict[str, Any]]:
                    return [{"Contents": [{"Key": k, "Size": size} for k in keys]}]
            return Pages()

        def download_file(self, bucket: str, key: str, target: str) -> None:
            Path(target).write_bytes(b"x" * size)

    module = types.ModuleType("boto3")
    module.client = lambda _name: Client()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boto3", module)


@pytest.mark.parametrize("key", ["models/../../../ESCAPED", "/abs/ESCAPED", "models/./x",
                                 "models/a//b"])
def test_bucket_keys_never_write_outside_the_directory(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _stand_in_boto3(monkeypatch, [key])
    root = tmp_path / "root"
    assert fetch.main(["s3://bkt/models", str(root)]) == 2  # before: wrote it outside
    assert "unsafe object key" in capsys.readouterr().err
    assert not list(tmp_path.rglob("ESCAPED"))
    assert {p.name for p in tmp_path.rglob("*") if p.is_file()} == set()


def test_folder_marker_objects_are_skipped(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in_boto3(monkeypatch, ["models/", "models/m.gguf"])
    dest = fetch.fetch("s3://bkt/models", tmp_path)
    assert (dest / "m.gguf").read_bytes() == b"xxx"  # before: IsADirectoryError


def test_symlink_in_the_cache_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "cache"
    (root / "bkt").mkdir(parents=True)
    (root / "bkt" / "models").symlink_to(outside)
    _stand_in_boto3(monkeypatch, ["models/m.gguf"])
    assert fetch.main(["s3://bkt/models", str(root)]) == 2
    assert "symlink" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


def test_second_file_of_a_repo_is_fetched_too(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    _stand_in_hub(monkeypatch, calls)
    fetch.fetch("hf://org/r/q4.gguf", tmp_path)
    dest = fetch.fetch("hf://org/r/q8.gguf", tmp_path)
    assert (dest / "q8.gguf").exists()  # before: the repo-wide marker skipped it
    assert [c["allow_patterns"] for c in calls] == [["q4.gguf"], ["q8.gguf"]]
    fetch.fetch("hf://org/r/q8.gguf", tmp_path)
    assert len(calls) == 2


def test_tampered_cache_is_fetched_again(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    _stand_in_hub(monkeypatch, calls)
    dest = fetch.fetch("hf://org/r/q4.gguf", tmp_path)
    (dest / "q4.gguf").write_bytes(b"evil!!!")  # same marker, other bytes
    fetch.fetch("hf://org/r/q4.gguf", tmp_path)
    assert len(calls) == 2
    assert (dest / "q4.gguf").read_bytes() == b"weights"


def test_secrets_are_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    token = "hf_SECRETabcdef123456"
    monkeypatch.setenv("HF_TOKEN", token)
    module = types.ModuleType("huggingface_hub")

    def broken(**kwargs: Any) -> str:
        raise OSError(f"401 for repo {kwargs['repo_id']} with token {kwargs['token']}")

    module.snapshot_download = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    # what Kubernetes makes of "hf://org/$(HF_TOKEN)" when nothing escapes it
    assert fetch.main([f"hf://org/{token}", str(tmp_path)]) == 1
    assert fetch.main([f"hf://org/{token}!", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert token not in out.err + out.out  # before: printed in both messages
    assert len(out.err.strip().splitlines()) == 2


def test_downloads_over_the_size_limit_fail(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(fetch.ENV_MAX_BYTES, "10")
    _stand_in_boto3(monkeypatch, ["m/a", "m/b", "m/c", "m/d"], size=3)
    assert fetch.main(["s3://bkt/m", str(tmp_path)]) == 2
    assert fetch.ENV_MAX_BYTES in capsys.readouterr().err
    assert not (tmp_path / "bkt" / "m" / "d").exists()


@pytest.mark.parametrize("raw", ["ten", "1.5", "0", "-3", "9" * 5000])
def test_a_size_limit_that_is_no_positive_integer_is_refused_by_name(
        raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(fetch.ENV_MAX_BYTES, raw)
    _stand_in_boto3(monkeypatch, ["m/a"], size=3)
    assert fetch.main(["s3://bkt/m", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{fetch.ENV_MAX_BYTES}: must be a positive integer" in err[0]
    assert not (tmp_path / "bkt" / "m" / "a").exists()
