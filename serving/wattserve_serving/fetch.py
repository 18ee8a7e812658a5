"""Download a model into a volume before the serving container starts.

    python -m wattserve_serving.fetch hf://org/name[/file.gguf] /models
    python -m wattserve_serving.fetch s3://bucket/prefix /models

The operator runs this as the init container of serving pods whose `spec.model.source`
is `hf://` or `s3://`, and points the serving container at ``<root>/<source without its
scheme>``: ``hf://org/name`` lands in ``<root>/org/name`` (a file named after the repo,
``hf://org/name/file.gguf``, at ``<root>/org/name/file.gguf``), ``s3://bucket/prefix`` in
``<root>/bucket/prefix``. The Hugging Face token, if any, comes from env ``HF_TOKEN``.
Exit codes: 0 done, 2 bad source, 1 download failed — each with one line on stderr.

Safety on a shared cache PVC: every written path is checked to stay inside its
directory (``..``, absolute keys and symlinks are refused); each source gets its own
marker under ``.wattserve-fetched/`` listing the size and SHA-256 of every file it
fetched, checked before the cache is trusted; downloads above
``WATTSERVE_FETCH_MAX_BYTES`` (default 256 GiB) fail; secret values from the env are
never printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

MARKER = ".wattserve-fetched"
ENV_MAX_BYTES = "WATTSERVE_FETCH_MAX_BYTES"
DEFAULT_MAX_BYTES = 256 << 30
SECRET_ENV = ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_SAFE = re.compile(r"[A-Za-z0-9._-]+")


class FetchError(Exception):
    """A problem the user can fix (bad source, missing client library, unsafe content)."""


def _safe_parts(rel: str, what: str) -> list[str]:
    """`rel` split on "/", refused when absolute or any part is empty, "." or ".."."""
    if rel.startswith("/") or "\\" in rel:
        raise FetchError(f"unsafe {what}: absolute or backslash path")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise FetchError(f"unsafe {what}: empty, '.' or '..' path component")
    return parts


def download_dir(source: str, root: Path) -> Path:
    """Where a source is downloaded: the repository (hf) or prefix (s3) under ``root``."""
    scheme, _, rest = source.partition("://")
    parts = [p for p in rest.split("/") if p]
    if any(p in (".", "..") or not _SAFE.fullmatch(p) for p in parts):
        raise FetchError("unsafe path in source: use [A-Za-z0-9._-] path components")
    keep = parts[:2] if scheme == "hf" else parts
    return root.joinpath(*keep)


def _inside(dest: Path, rel: str, what: str) -> Path:
    """dest/rel, refused when it could leave ``dest`` (.., absolute, a symlink on the way)."""
    target = dest.joinpath(*_safe_parts(rel, what))
    here = dest
    for part in target.relative_to(dest).parts:
        here = here / part
        if here.is_symlink():
            raise FetchError(f"unsafe {what}: a symlink is in the way")
    return target


def _max_bytes() -> int:
    """The download limit; a value that is not a positive integer is refused (it fell back
    to the default silently: a typo lifted a limit someone had set)."""
    raw = os.environ.get(ENV_MAX_BYTES, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:  # a word, a fraction, more digits than int() converts
        value = 0
    if value <= 0:
        shown = repr(raw) if len(raw) <= 40 else repr(raw[:40]) + "..."
        raise FetchError(f"{ENV_MAX_BYTES}: must be a positive integer (bytes), got {shown}")
    return value


def _hf(rest: str, dest: Path) -> list[str]:
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 2:
        raise FetchError("hf:// source needs org/name")
    repo_id = "/".join(parts[:2])
    file = "/".join(parts[2:]) or None
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise FetchError("hf:// sources need huggingface_hub "
                         "(pip install huggingface-hub)") from exc
    snapshot_download(repo_id=repo_id, local_dir=str(dest), token=os.environ.get("HF_TOKEN"),
                      allow_patterns=[file] if file else None)
    if file is not None:
        return [file]
    return sorted(
        str(p.relative_to(dest)) for p in dest.rglob("*")
        if not p.is_dir() and not p.relative_to(dest).parts[0].startswith(".")
    )


def _s3(rest: str, dest: Path) -> list[str]:
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise FetchError("s3:// source needs a bucket")
    try:
        import boto3  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError as exc:
        raise FetchError("s3:// sources need boto3 (pip install boto3)") from exc
    client = boto3.client("s3")
    paginator = client.get_paginator("list_objects_v2")
    written: list[str] = []
    total, limit = 0, _max_bytes()
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            if key.endswith("/"):
                continue  # a folder marker object, not a file
            what = f"object key #{len(written) + 1}"
            if not key.startswith(prefix):
                raise FetchError(f"unsafe {what}: outside the prefix")
            rel = key[len(prefix):]
            if prefix and not prefix.endswith("/") and rel.startswith("/"):
                rel = rel[1:]
            rel = rel or key.rsplit("/", 1)[-1]  # the prefix named one object
            target = _inside(dest, rel, what)
            total += int(item.get("Size", 0))
            if total > limit:
                raise FetchError(f"download larger than {ENV_MAX_BYTES}={limit} bytes")
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))
            written.append(rel)
    return written


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _marker(dest: Path, source: str) -> Path:
    return dest / MARKER / (hashlib.sha256(source.encode()).hexdigest()[:32] + ".json")


def _record(dest: Path, files: list[str]) -> dict[str, Any]:
    """Size and SHA-256 of each fetched file, after checking it is a regular file inside."""
    out: dict[str, Any] = {}
    total, limit = 0, _max_bytes()
    for rel in files:
        path = _inside(dest, rel, "downloaded file")
        if not path.is_file():
            raise FetchError(f"downloaded file #{len(out) + 1} is missing or not a file")
        size = path.stat().st_size
        total += size
        if total > limit:
            raise FetchError(f"download larger than {ENV_MAX_BYTES}={limit} bytes")
        out[rel] = {"size": size, "sha256": _digest(path)}
    if not out:
        raise FetchError("the source holds no file")
    return out


def _verified(dest: Path, marker: Path) -> bool:
    """True when the marker is intact and every file it lists still matches it."""
    try:
        if marker.is_symlink() or not marker.is_file():
            return False
        files = json.loads(marker.read_text())["files"]
        for rel, meta in files.items():
            path = _inside(dest, rel, "cached file")
            if not path.is_file() or path.stat().st_size != meta["size"]:
                return False
            if _digest(path) != meta["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError, FetchError):
        return False
    return bool(files)


def fetch(source: str, root: Path) -> Path:
    """Download ``source`` under ``root``; returns the model directory."""
    scheme, sep, rest = source.partition("://")
    if not sep or scheme not in ("hf", "s3"):
        raise FetchError("only hf:// and s3:// sources are downloaded")
    dest = download_dir(source, root)
    _inside(root, str(dest.relative_to(root)), "source directory")
    marker = _marker(dest, source)
    if _verified(dest, marker):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    files = _hf(rest, dest) if scheme == "hf" else _s3(rest, dest)
    record = {"source": source, "files": _record(dest, files)}
    marker.parent.mkdir(exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    tmp.replace(marker)
    return dest


def redact(text: str, env: dict[str, str] | None = None) -> str:
    """``text`` with the value of every secret env variable replaced by ``***``."""
    env = dict(os.environ) if env is None else env
    for name in SECRET_ENV:
        value = env.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return " ".join(text.split())  # one line


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m wattserve_serving.fetch SOURCE ROOT", file=sys.stderr)
        return 2
    try:
        path = fetch(args[0], Path(args[1]))
    except FetchError as exc:
        print(redact(f"wattserve fetch: {exc}"), file=sys.stderr)
        return 2
    except Exception as exc:  # a download failure of any kind: say it in one line
        print(redact(f"wattserve fetch: download failed: {type(exc).__name__}: {exc}"),
              file=sys.stderr)
        return 1
    print(redact(str(path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
