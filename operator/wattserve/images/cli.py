"""`wattserve images`: list, build and import the project's images; generate Dockerfiles.

    wattserve images list [-o json|yaml]
    wattserve images build [NAME ...] [--force] [-o json|yaml]     (default: all)
    wattserve images import --socket /run/containerd/containerd.sock [NAME ...]
    wattserve images dockerfile NAME | --write | --check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from wattserve.cli.table import render_table
from wattserve.images import inputs
from wattserve.images.build import BuildError, Built, archive_path, cache_dir, repo_root
from wattserve.images.containerd import (
    K8S_NAMESPACE,
    NODE_IMAGES,
    ContainerdError,
    build_images,
    ensure_images,
)
from wattserve.images.dockerfile import render_dockerfile
from wattserve.images.spec import DefinitionError, ImageSpec, load_definitions


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="wattserve images",
                description="The operator, serving and model images: one definition each "
                            "(operator/wattserve/images/definitions), built here without "
                            "Docker or a registry, or as Dockerfiles.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("list", help="the definitions, their refs and cached archives")
    s.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    s = sub.add_parser("build", help="build OCI archives (cached by a hash of all inputs)")
    s.add_argument("names", nargs="*", help="definitions to build (default: all)")
    s.add_argument("--force", action="store_true", help="rebuild even when cached")
    s.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    s = sub.add_parser("import", help="build if needed, then import into a containerd")
    s.add_argument("names", nargs="*", help=f"default: {' '.join(NODE_IMAGES)}")
    s.add_argument("--socket", type=Path, required=True, help="containerd's gRPC socket")
    s.add_argument("--namespace", default=K8S_NAMESPACE, help="containerd namespace")
    s = sub.add_parser("dockerfile", help="print, write or check the generated Dockerfiles")
    s.add_argument("name", nargs="?")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="write every committed Dockerfile")
    g.add_argument("--check", action="store_true", help="exit 1 if one differs")
    return p


def dockerfiles(specs: dict[str, ImageSpec]) -> dict[str, str]:
    """{repo-relative path: generated text} for every definition."""
    return {spec.dockerfile: render_dockerfile(spec, specs[spec.base].ref if spec.base else "")
            for spec in specs.values()}


def _emit(rows: list[dict[str, Any]], output: str, headers: list[str]) -> None:
    if output == "json":
        print(json.dumps(rows, indent=2))
    elif output == "yaml":
        print(yaml.safe_dump(rows, sort_keys=False), end="")
    else:
        print(render_table(headers, [[str(r[h]) for h in headers] for r in rows], 80))


def _built_row(b: Built) -> dict[str, Any]:
    return {"name": b.name, "ref": b.ref, "archive": str(b.archive),
            "MiB": round(b.size_bytes / 2**20), "cached": b.cached,
            "seconds": round(b.seconds, 1)}


def _dockerfile_cmd(args: argparse.Namespace, specs: dict[str, ImageSpec]) -> int:
    files = dockerfiles(specs)
    root = repo_root()
    if args.write or args.check:
        stale = [path for path, text in files.items()
                 if not (root / path).is_file() or (root / path).read_text() != text]
        for path in stale:
            if args.write:
                (root / path).write_text(files[path])
            print(f"{'wrote' if args.write else 'stale'}: {path}")
        return 1 if stale and args.check else 0
    if not args.name:
        raise _UsageError("dockerfile: give a NAME, --write or --check")
    if args.name not in specs:
        raise _UsageError(f"dockerfile: no definition {args.name!r}")
    print(files[specs[args.name].dockerfile], end="")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    specs = load_definitions()
    names = getattr(args, "names", None) or []
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise _UsageError(f"no image definition {unknown[0]!r} (known: {', '.join(specs)})")
    if args.command == "dockerfile":
        return _dockerfile_cmd(args, specs)
    if args.command == "list":
        root, cache = repo_root(), cache_dir()
        rows = []
        for spec in specs.values():
            digest = inputs.inputs_hash(spec.name, specs, root)
            archive = archive_path(spec.name, digest, cache)
            rows.append({"name": spec.name, "ref": spec.ref, "from": spec.base or "debian",
                         "dockerfile": spec.dockerfile, "inputs": digest[:16],
                         "built": archive.is_file()})
        _emit(rows, args.output, ["name", "ref", "from", "dockerfile", "inputs", "built"])
        return 0
    if args.command == "build":
        built = build_images(names or list(specs))
        _emit([_built_row(b) for b in built], args.output,
              ["name", "ref", "MiB", "cached", "seconds", "archive"])
        return 0
    refs = ensure_images(args.socket, names or NODE_IMAGES, namespace=args.namespace)
    for ref in refs:
        print(ref)
    return 0


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"wattserve images: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if getattr(args, "socket", None) is not None and not args.socket.exists():
        print(f"wattserve images: --socket {args.socket}: no such socket", file=sys.stderr)
        return 2
    # A SIGTERM unwinds like an exception, so a half-done build removes its temporary rootfs.
    with contextlib.suppress(ValueError):  # not in the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return _dispatch(args)
    except (_UsageError, DefinitionError) as exc:
        print(f"wattserve images: {exc}", file=sys.stderr)
        return 2
    except (BuildError, ContainerdError) as exc:
        print(f"wattserve images: {exc}", file=sys.stderr)
        return 1
