"""Manifest files read as kubectl reads them: YAML or JSON, every document, ``kind: List``
expanded. Pure apart from reading the file.

kubectl turns YAML into JSON with Go's YAML library before the API server sees it, so
three YAML 1.1 readings of PyYAML would make `wattserve plan` accept or refuse what the API
server does not: base-60 numbers (``50:00`` is 3000 in PyYAML, a string for kubectl),
exponents without a dot (``3e3`` is a string in PyYAML, the number 3000 for kubectl) and
duplicate keys (PyYAML keeps the last, kubectl refuses the file). This loader reads them
kubectl's way; JSON (which YAML reads only without tab indentation) is read as JSON.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from wattserve.api.errors import SpecError
from wattserve.api.quantities import _kind

MAX_MANIFEST_CHARS: Final = 16 << 20  # a YAML file of ModelDeployments or pools, never this large
T = TypeVar("T")
_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"

_INT: Final = re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X)
_FLOAT: Final = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


class NumberTooLarge(ConstructorError):
    """An integer with more digits than Python converts (``sys.get_int_max_str_digits``)."""


class KubectlLoader(yaml.SafeLoader):
    """SafeLoader with kubectl's numbers (Go YAML: `3e3` is 3000, `50:00` a string) and a
    refusal of duplicate keys (ConstructorError), as the API server's decoder refuses them.
    An integer too long to convert is a NumberTooLarge naming its key and line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._int_keys: dict[Node, str] = {}  # integer value node -> its mapping key

    def construct_yaml_int(self, node: ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than int() converts (4300 by default)
            key = self._int_keys.get(node)
            raise NumberTooLarge(None, None, f"{f'{key}: ' if key else ''}an integer of "
                                 f"{len(node.value)} characters is out of range",
                                 node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: set[object] = set()
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:  # "<<: *base": merged below, as Go YAML does
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(value_node, ScalarNode) and value_node.tag == _INT_TAG:
                    self._int_keys[value_node] = str(key)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader refuses it below
                    continue
                if duplicate:
                    raise ConstructorError("while constructing a mapping", node.start_mark,
                                           f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


KubectlLoader.add_constructor(_INT_TAG, KubectlLoader.construct_yaml_int)
# Go YAML (sigs.k8s.io/yaml) decodes into interface{}: `2024-01-01` stays a string there,
# so no timestamp resolver; ints and floats as Go reads them.
KubectlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in (_INT_TAG, _FLOAT_TAG, "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
KubectlLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
KubectlLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


class KubectlDumper(yaml.SafeDumper):
    """SafeDumper that quotes every string kubectl, this loader or a YAML 1.1 reader would
    read as anything but a string (`1e3`, `0x1f`, `2024-01-01`, `yes`): what `-o yaml`
    writes reads back as written."""


KubectlDumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}
KubectlDumper.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
KubectlDumper.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def dump_yaml(data: Any) -> str:
    """``data`` as block YAML, keys in their order, strings quoted where they must be."""
    text: str = yaml.dump(data, Dumper=KubectlDumper, sort_keys=False, allow_unicode=True)
    return text


def read_manifest(path: str | Path) -> str:
    """A manifest file's text; ``-`` is standard input (as ``kubectl apply -f -``; the
    caller lets one flag read it). A binary or oversized input is a SpecError naming it; an
    OSError (missing, a directory) is left to the caller, which knows the flag."""
    try:
        if str(path) == "-":
            text = _read_stdin()
        else:
            with Path(path).open(encoding="utf-8") as fh:
                text = fh.read(MAX_MANIFEST_CHARS + 1)
    except UnicodeDecodeError:
        raise SpecError(str(path), "not a UTF-8 text file") from None
    if len(text) > MAX_MANIFEST_CHARS:
        raise SpecError(str(path), f"larger than {MAX_MANIFEST_CHARS >> 20} MiB")
    return text


def _read_stdin() -> str:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text stream put in its place (tests, an embedding program)
        return sys.stdin.read(MAX_MANIFEST_CHARS + 1)
    raw: bytes = buffer.read(MAX_MANIFEST_CHARS + 1)
    if len(raw) > MAX_MANIFEST_CHARS:  # before decoding: the cut may split a character
        raise SpecError("-", f"larger than {MAX_MANIFEST_CHARS >> 20} MiB")
    return raw.decode("utf-8")


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_documents(text: str, path: str) -> list[Any]:
    """Every non-empty document of a YAML (or JSON) text, read as kubectl reads it; a
    SpecError naming ``path`` (and the line) when it cannot be read."""
    if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
        try:
            return [json.loads(text.lstrip("\ufeff"), object_pairs_hook=_json_pairs)]
        except RecursionError:
            raise SpecError(path, "not valid YAML (JSON): nested too deeply") from None
        except ValueError as exc:
            if "duplicate key" in str(exc):
                raise SpecError(path, f"not valid JSON: {exc}") from None
            # Not JSON: YAML flow style also opens with a brace; read it as YAML. (So is an
            # integer too long for json: the YAML reader below names its key and line.)
    try:
        return [doc for doc in yaml.load_all(text, Loader=KubectlLoader) if doc is not None]
    except RecursionError:
        raise SpecError(path, "not valid YAML: nested too deeply") from None
    except NumberTooLarge as exc:
        where = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark is not None else ""
        raise SpecError(path, f"{where}{exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SpecError(path, f"not valid YAML{where}: {problem}") from None


def load_yaml_documents(text: str, path: str = "<input>") -> list[dict[str, Any]]:
    """Load every non-empty YAML (or JSON) document; raises SpecError on YAML or shape
    errors."""
    docs = parse_documents(text, path)
    if not docs:
        raise SpecError(path, "is empty: expected at least one YAML document")
    out: list[dict[str, Any]] = []
    for index, doc in enumerate(docs):
        items = doc.get("items") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and isinstance(doc.get("kind"), str) and \
                doc["kind"].endswith("List") and isinstance(items, list):
            for number, item in enumerate(items):
                if not isinstance(item, dict):
                    raise SpecError(path, f"document {index + 1}: items[{number}] must be a "
                                    f"mapping (a Kubernetes object), got {_kind(item)}")
            out.extend(items)
            continue
        if not isinstance(doc, dict):
            raise SpecError(path, f"document {index + 1} must be a mapping (a Kubernetes object)")
        out.append(doc)
    if not out:
        raise SpecError(path, "holds no object: expected at least one")
    return out


def require_type_meta(docs: list[dict[str, Any]], path: str) -> None:
    """Every object in a manifest names its apiVersion and kind: kubectl refuses one that
    does not ("apiVersion not set, kind not set"), so a file that plans here must apply
    there too. Raises SpecError naming the document."""
    for index, doc in enumerate(docs):
        missing = [key for key in ("apiVersion", "kind")
                   if not isinstance(doc.get(key), str) or not doc[key].strip()]
        if missing:
            raise SpecError(path, f"document {index + 1}: {' and '.join(missing)} not set "
                            "(kubectl refuses an object without them)")


def parse_each(docs: list[dict[str, Any]], path: str, parse: Callable[[dict[str, Any]], T],
               kind: str | None = None) -> list[T]:
    """The documents (those of ``kind``, when given) parsed; a SpecError is raised again
    naming the file and, among several documents, the one at fault
    (``pools.yaml: document 3: spec.node.cpu: ...``)."""
    out = []
    for index, doc in enumerate(docs):
        if kind is not None and doc.get("kind") != kind:
            continue
        try:
            out.append(parse(doc))
        except SpecError as exc:
            where = path if len(docs) == 1 else f"{path}: document {index + 1}"
            raise SpecError("", f"{where}: {exc}") from None
    return out
