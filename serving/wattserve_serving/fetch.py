"""Download a model into a volume before the serving container starts.

    python -m wattserve_serving.fetch hf://org/name[/file.gguf] /models
    python -m wattserve_serving.fetch s3://bucket/prefix /models

The operator runs this as the init container of serving pods whose `spec.model.source`
is `hf://` or `s3://`, and points the serving container at ``<root>/<source without its
scheme>``: ``hf://org/name`` lands in ``<root>/org/name`` (a file named after the repo,
``hf://org/name/file.gguf``, at ``<root>/org/name/file.gguf``), ``s3://bucket/prefix`` in
``<root>/bucket/prefix``. A ``.complete`` marker makes it a no-op when the directory is
already filled (a shared cache PVC). The Hugging Face token, if any, comes from env
``HF_TOKEN``. Exit codes: 0 done, 2 bad source, 1 download failed — each with one line on
stderr.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

MARKER = ".complete"


class FetchError(Exception):
    """A problem the user can fix (bad source, missing client library)."""


def download_dir(source: str, root: Path) -> Path:
    """Where a source is downloaded: the repository (hf) or prefix (s3) under ``root``."""
    scheme, _, rest = source.partition("://")
    parts = [p for p in rest.split("/") if p]
    if any(p in (".", "..") or not _SAFE.match(p) for p in parts):
        raise FetchError(f"unsafe path in source {source!r}")
    keep = parts[:2] if scheme == "hf" else parts
    return root.joinpath(*keep)


_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def _hf(rest: str, dest: Path) -> None:
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 2:
        raise FetchError(f"hf:// source needs org/name, got {rest!r}")
    repo_id = "/".join(parts[:2])
    file = "/".join(parts[2:]) or None
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise FetchError("hf:// sources need huggingface_hub "
                         "(pip install huggingface-hub)") from exc
    snapshot_download(repo_id=repo_id, local_dir=str(dest), token=os.environ.get("HF_TOKEN"),
                      allow_patterns=[file] if file else None)


def _s3(rest: str, dest: Path) -> None:
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise FetchError(f"s3:// source needs a bucket, got {rest!r}")
    try:
        import boto3  # type: ignore[import-not-found]
    except ImportError as exc:
        raise FetchError("s3:// sources need boto3 (pip install boto3)") from exc
    client = boto3.client("s3")
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            target = dest / Path(key).relative_to(prefix) if prefix else dest / key
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))


def fetch(source: str, root: Path) -> Path:
    """Download ``source`` under ``root``; returns the model directory."""
    scheme, sep, rest = source.partition("://")
    if not sep or scheme not in ("hf", "s3"):
        raise FetchError(f"only hf:// and s3:// sources are downloaded, got {source!r}")
    dest = download_dir(source, root)
    if (dest / MARKER).exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if scheme == "hf":
        _hf(rest, dest)
    else:
        _s3(rest, dest)
    (dest / MARKER).write_text(source + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m wattserve_serving.fetch SOURCE ROOT", file=sys.stderr)
        return 2
    try:
        path = fetch(args[0], Path(args[1]))
    except FetchError as exc:
        print(f"wattserve fetch: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a download failure of any kind: say it in one line
        print(f"wattserve fetch: download of {args[0]} failed: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
