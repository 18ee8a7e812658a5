"""Plain-text tables for CLI output (no dependencies)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def printable(text: str) -> str:
    """Text a terminal shows as written: control characters (an escape sequence, a
    newline in a name) become U+FFFD, so a field of a manifest cannot rewrite the screen."""
    return "".join("\ufffd" if unicodedata.category(ch) == "Cc" else ch for ch in text)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 max_width: int = 60) -> str:
    """Left-aligned columns separated by two spaces; long cells are cut with '…'."""
    cells = [[_cut(printable(str(cell)), max_width) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
