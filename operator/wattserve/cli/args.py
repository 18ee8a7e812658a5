"""The command line's one argparse: a bad flag is one line, ``<prog>: <message>``, exit 2.

argparse's own ``error`` prints the whole usage first (11-14 lines): `plan`, `simulate`
and `operator` share this one instead.
"""

from __future__ import annotations

import argparse
from typing import Any


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line with exit code 2 (no usage dump)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message}\n")
