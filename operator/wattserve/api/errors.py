"""The one error type of the API layer: a problem at a precise field path."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec value that is missing, of the wrong type, or out of range.

    ``path`` is the dotted field path from the object's root, for example
    ``spec.scaling.minReplicas``; ``str(err)`` is a one-line message naming it.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)
