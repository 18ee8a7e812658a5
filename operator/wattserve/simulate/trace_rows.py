"""Records of a trace file, each with the file line it starts on.

CSV/TSV (a header row; ``,``, tab or ``;``), JSON lines, one JSON array, or one JSON
document holding an array of records (``{"requests": [...]}``), any of them gzip-compressed
(read by its magic bytes, whatever the file's name). The file is opened once, so a pipe
(``--trace <(zstdcat trace.jsonl.zst)``, ``/dev/stdin``) reads whole. Every refusal is a
``ValueError`` naming the line.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

MAX_FIELD = 1 << 20  # bytes in one CSV field (hash-id lists can be long)
MAX_JSON_BYTES = 512 << 20  # a JSON document read whole (an array, or a wrapper object)
MAX_LINE = 16 << 20  # characters in one line of CSV or JSON lines (/dev/zero has no end)
_GZIP_MAGIC = b"\x1f\x8b"
LONG_NUMBER = "a number with more digits than can be read"


@contextlib.contextmanager
def _open(path: Path) -> Iterator[TextIO]:
    """The file as text, decompressed when it is gzip: one open, the magic peeked."""
    with open(path, "rb") as raw:
        magic = raw.peek(2)[:2]
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if magic == _GZIP_MAGIC else raw
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            yield text
        finally:
            text.detach()  # `raw` is closed by its own `with`; GzipFile needs no close
            if stream is not raw:
                stream.close()


def rows(path: Path, check_header: Callable[[list[str]], None] = lambda names: None,
         ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, record), streamed except a JSON document read whole. Line numbers are
    the file's, blank lines counted; a record over several lines has the line it starts on.
    ``check_header`` sees a CSV header's names as written (duplicates included)."""
    with _open(path) as fh:
        try:
            skipped = 0
            first = fh.readline(MAX_LINE + 1)
            while first and not first.strip():
                skipped += 1
                first = fh.readline(MAX_LINE + 1)
            head = first.lstrip()[:1]
            if head == "[" or (head == "{" and len(first) > MAX_LINE):
                yield from _json_document(first + _bounded(fh), skipped)
            elif len(first) > MAX_LINE:
                raise ValueError(f"line {1 + skipped}: {_TOO_LONG}")
            elif head == "{":
                yield from _json_lines(first, _lines(fh, 2 + skipped), skipped)
            elif head:
                yield from _csv_rows(first, _lines(fh, 2 + skipped), skipped, check_header)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path.name}: not UTF-8 text ({exc.reason})") from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise ValueError(f"{path.name}: a damaged gzip file ({exc})") from None


_TOO_LONG = f"longer than {MAX_LINE >> 20} MiB (not a trace line)"


def _lines(fh: TextIO, number: int) -> Iterator[str]:
    """The file's lines from line ``number`` on, none longer than MAX_LINE."""
    while line := fh.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE:
            raise ValueError(f"line {number}: {_TOO_LONG}")
        yield line
        number += 1


def _bounded(fh: TextIO) -> str:
    text = fh.read(MAX_JSON_BYTES + 1)
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(_DOCUMENT_TOO_LONG)
    return text


_DOCUMENT_TOO_LONG = (f"a JSON document over {MAX_JSON_BYTES >> 20} MiB: write it as JSON "
                      "lines (one record per line), which are streamed")


def _loads(text: str, where: str = "", what: str = "JSON") -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}not {what}: {exc}") from None
    except ValueError:  # an integer past Python's digit limit (4300 by default)
        raise ValueError(f"{where}{LONG_NUMBER}") from None


def _json_document(text: str, skipped: int) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """One JSON array of records, or an object holding one (``{"requests": [...]}``), or a
    single record over several lines; each record with the file line it starts on."""
    decoder = json.JSONDecoder()
    data = _loads(text)
    if isinstance(data, dict):
        arrays = [(k, v) for k, v in data.items() if isinstance(v, list) and v
                  and all(isinstance(o, dict) for o in v)]
        if not arrays:  # one record, pretty-printed (a list of numbers is one of its fields)
            yield 1 + skipped, data
            return
        if len(arrays) > 1:
            raise ValueError("a JSON object with several arrays "
                             f"({', '.join(repr(k) for k, _ in arrays[:4])}): which one holds "
                             "the requests is unclear; write the records as an array or as "
                             "JSON lines")
        start = _top_level_value(text, arrays[0][0], decoder)
    elif isinstance(data, list):
        start = text.index("[")
    else:
        raise ValueError("a JSON trace must be an array of objects")
    # Walk the array again to find where each record starts (the values are the same).
    pos, line, counted = start + 1, 1 + skipped, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        obj, pos = decoder.raw_decode(text, pos)
        yield line, _object(obj, line)


def _top_level_value(text: str, key: str, decoder: json.JSONDecoder) -> int:
    """Where the value of ``key`` in the (valid) JSON object ``text`` begins: the object's
    own key, not one of a nested object (``{"meta": {"requests": [...]}, "requests": ...}``);
    the last one when the key repeats, as json.loads keeps."""
    pos, found = text.index("{") + 1, -1
    while True:
        pos = _skip(text, pos, " \t\r\n,")
        if text[pos] == "}":
            return found
        name, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos, " \t\r\n:")
        if name == key:
            found = pos
        _, pos = decoder.raw_decode(text, pos)


def _skip(text: str, pos: int, chars: str) -> int:
    while text[pos] in chars:
        pos += 1
    return pos


def _json_lines(first: str, lines: Iterator[str], skipped: int
                ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if not first.rstrip().endswith("}"):  # a JSON document over several lines
        yield from _json_document(first + _joined(lines), skipped)
        return
    pending: list[str] = []
    for line in lines:
        pending.append(line)
        if line.strip():
            break
    else:  # the file is one line: a record, or a wrapper written compactly (json.dump)
        yield from _json_document(first, skipped)
        return
    for i, line in enumerate(itertools.chain([first], pending, lines), start=1 + skipped):
        if line.strip():
            yield i, _object(_loads(line, f"line {i}: ", "a JSON object"), i)


def _joined(lines: Iterator[str]) -> str:
    parts, size = [], 0
    for line in lines:
        size += len(line)
        if size > MAX_JSON_BYTES:
            raise ValueError(_DOCUMENT_TOO_LONG)
        parts.append(line)
    return "".join(parts)


def _csv_rows(first: str, fh: Iterator[str], skipped: int,
              check_header: Callable[[list[str]], None],
              ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    delim = max(",\t;", key=first.count)
    reader = csv.DictReader(itertools.chain([first], fh), delimiter=delim)
    old = csv.field_size_limit(MAX_FIELD)
    try:
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise ValueError(f"line {1 + skipped}: not CSV: {exc}") from None
        if any(_broken(str(n)) for n in header):
            raise ValueError(f"line {1 + skipped}: a quoted field opened here is not closed "
                             "on its line")
        check_header([str(n) for n in header])
        start = reader.line_num + 1  # the line the next record starts on (of those read)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ValueError(f"line {start + skipped}: not CSV: {exc}") from None
            line = start + skipped
            start = reader.line_num + 1
            values = [v for k, v in row.items() if k is not None]
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values) \
                    and None not in row:
                continue  # a line of blanks (spaces, tabs, bare delimiters)
            if None in row:
                extra = row[None]
                raise ValueError(f"line {line}: {len(header) + len(extra)} fields, the header "
                                 f"has {len(header)} (a {delim!r} inside a value needs quotes)")
            # A field holding a line break: text over several lines, or a quote left open
            # (to the next line or to the end of the file); either way not one row per line.
            if any(isinstance(v, str) and _broken(v) for v in values):
                raise ValueError(f"line {line}: a quoted field opened here is not closed "
                                 "on its line (or holds text over several lines: this reader "
                                 "takes one request per line; drop the text columns)")
            yield line, row
    finally:
        csv.field_size_limit(old)


def _broken(field: str) -> bool:
    return "\n" in field or "\r" in field


def _object(obj: object, line: int) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"line {line}: expected a JSON object, got {type(obj).__name__}")
    return obj
