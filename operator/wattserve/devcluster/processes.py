"""Start, find and stop the control-plane processes (plain local processes, one per component).

Also the one copy of :func:`free_port` and :func:`poll`, shared by the dev cluster, the
tests, e2e and the benchmarks.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(TimeoutError):
    """:func:`poll` ran out of time; ``last`` is the last result (or error) of the check."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


def poll(check: Callable[[], T], timeout: float, what: str, interval: float = 0.25,
         retry_on: tuple[type[Exception], ...] = ()) -> T:
    """Call ``check`` until it returns something truthy and return that; exceptions of the
    ``retry_on`` types count as "not yet". At the deadline: :class:`PollTimeout` naming
    ``what``, the number of tries and the last result."""
    deadline = time.monotonic() + timeout
    last: object = None
    tries = 0
    while True:
        tries += 1
        try:
            value = check()
            if value:
                return value
            last = value
        except retry_on as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise PollTimeout(f"timed out after {timeout:.0f}s ({tries} tries) waiting for "
                              f"{what}; last result: {str(last)[:500]}", last)
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGTERM this process when the process that started it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


_PR_SET_PDEATHSIG = 1


def spawn(
    argv: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    die_with_parent: bool = False,
) -> int:
    """Start ``argv`` detached (own session), stdout+stderr to ``log_path``; return its pid.

    ``die_with_parent``: the process is killed when the caller exits (test sessions use this
    so that a killed pytest leaves nothing behind; ``dev-cluster up`` does not).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec = _die_with_parent if die_with_parent and sys.platform == "linux" else None
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
            preexec_fn=preexec,
        )
    return proc.pid


def _reap(pid: int) -> None:
    """Collect a child that exited (only our own children; others are reaped by init)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int, binary: str | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, its argv[0] is ``binary``."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    if binary is None:
        return True
    argv = cmdline(pid)
    return bool(argv) and argv[0] == binary


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def stop(pid: int, binary: str | None = None, grace_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace_s``; only if ``pid`` still runs ``binary``.

    Returns True when the process is gone (or was never ours).
    """
    if not is_alive(pid, binary):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)
