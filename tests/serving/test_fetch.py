"""The init container's downloader: where models land, idempotency, one-line errors."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from wattserve_serving import fetch


def _fake_hub(monkeypatch: pytest.MonkeyPatch, calls: list[dict[str, Any]]) -> None:
    module = types.ModuleType("huggingface_hub")

    def snapshot_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        for name in kwargs["allow_patterns"] or ["model.gguf"]:  # as the hub does
            Path(kwargs["local_dir"], name).write_text("weights")
        return str(kwargs["local_dir"])

    module.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)


def test_hf_source_downloads_into_a_named_directory_once(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    _fake_hub(monkeypatch, calls)
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    path = fetch.fetch("hf://org/model/file.gguf", tmp_path)
    assert path == tmp_path / "org" / "model"
    assert (path / "file.gguf").read_text() == "weights"
    assert calls == [{"repo_id": "org/model", "local_dir": str(path), "token": "secret-token",
                      "allow_patterns": ["file.gguf"]}]
    assert fetch.fetch("hf://org/model/file.gguf", tmp_path) == path
    assert len(calls) == 1  # the verified marker makes the second call a no-op


def test_models_land_where_the_operator_points_the_serving_container(tmp_path: Path) -> None:
    # the operator sets WATTSERVE_MODEL_PATH=/models/<source without its scheme>
    assert fetch.download_dir("hf://meta-llama/Llama-3.1-8B-Instruct", tmp_path) == (
        tmp_path / "meta-llama" / "Llama-3.1-8B-Instruct")
    assert fetch.download_dir("s3://bucket/a/b", tmp_path) == tmp_path / "bucket" / "a" / "b"


@pytest.mark.parametrize(("source", "needle"), [
    ("gguf:///models/x.gguf", "only hf:// and s3://"),
    ("hf://onlyorg", "org/name"),
    ("no-scheme", "only hf:// and s3://"),
    ("hf://org/../../etc", "unsafe path"),
])
def test_bad_sources_exit_2_with_one_line(source: str, needle: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert fetch.main([source, str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_download_failure_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    module = types.ModuleType("huggingface_hub")

    def broken(**_: Any) -> str:
        raise OSError("connection reset")

    module.snapshot_download = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    assert fetch.main(["hf://org/model", str(tmp_path)]) == 1
    assert "connection reset" in capsys.readouterr().err
    assert not (tmp_path / "org" / "model" / fetch.MARKER).exists()
