"""The one error type of the API layer: a problem at a precise field path."""

from __future__ import annotations

import unicodedata


class SpecError(ValueError):
    """A spec value that is missing, of the wrong type, or out of range.

    ``path`` is the dotted field path from the object's root, for example
    ``spec.scaling.minReplicas``; ``str(err)`` is a one-line message naming it.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        text = f"{path}: {message}" if path else message
        super().__init__(_one_line(text))


def _one_line(text: str) -> str:
    """``text`` with its control characters escaped (a key like ``"bad\\nkey"`` or an
    escape sequence in a manifest neither breaks the line nor reaches the terminal raw)."""
    if not any(unicodedata.category(ch) == "Cc" for ch in text):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) == "Cc" else ch for ch in text)
