"""An oci:// model image is copied to a directory: the serving app takes the one GGUF in it."""

from __future__ import annotations

from pathlib import Path

from wattserve_serving.model_files import resolve_model


def test_directory_with_one_gguf_resolves_to_that_file(tmp_path: Path) -> None:
    (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    (tmp_path / "LICENSE").write_text("x")
    assert resolve_model(str(tmp_path)) == str(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_directory_without_exactly_one_gguf_is_left_to_the_engine(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")  # a Hugging Face directory (vLLM)
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_files_and_hub_ids_are_unchanged(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)) == str(gguf)
    assert resolve_model("org/model") == "org/model"
