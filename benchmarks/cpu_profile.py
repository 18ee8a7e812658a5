"""Where a process's CPU goes, by component: py-spy samples grouped by who spends them.

Used by ``operator_scale.py --profile``: the operator is sampled (py-spy, 50 Hz, active
samples only) from the first create until it has settled, and each sample is charged to
the first component its stack matches, leaf first (:data:`COMPONENTS`), so JSON decoding
inside kopf's watch stream counts as JSON decoding and the fleet's placement inside a
reconcile counts as the fleet. The table gives each component's share of the samples.

py-spy is not a dependency of the project (``pip install py-spy``); without it the benchmark
says so in one line and measures everything else. It needs ptrace rights over the
process (root, or ``kernel.yama.ptrace_scope`` 0).

    python benchmarks/cpu_profile.py FILE.raw      # the table of a recorded profile
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (component, substrings of a frame that put a sample there): the first component whose
# substring is found in a frame, reading the stack from the leaf up, takes the sample.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JSON decoding (watch streams, answers)", ("json/decoder.py",)),
    ("JSON encoding (our requests)", ("json/encoder.py",)),
    ("TLS and sockets", ("ssl.py", "sslproto.py", "selector_events.py")),
    ("fleet assignment and planning", ("wattserve/controller/fleetstate.py",
                                       "wattserve/planning/")),
    ("reconcile decisions and rendering", ("wattserve/reconcile/", "wattserve/render/",
                                           "wattserve/api/")),
    ("caches and intake (slimming, echoes)", ("wattserve/controller/cache.py",
                                              "wattserve/controller/intake.py")),
    ("our HTTP client and Events", ("wattserve/controller/kubeapi.py",
                                    "wattserve/controller/events.py")),
    ("aiohttp", ("aiohttp/",)),
    ("kopf watch and dispatch", ("kopf/",)),
    ("reconciler runtime (queue, workers, status)", ("wattserve/controller/",)),
    ("event loop waiting (select)", ("selectors.py",)),
)
OTHER = "asyncio and the rest"


def component(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, marks in COMPONENTS:
            if any(mark in frame for mark in marks):
                return name
    return OTHER


def breakdown(raw: str) -> tuple[int, Counter[str]]:
    """Samples in all, and per component, from py-spy's ``raw`` (collapsed stacks) output."""
    total, shares = 0, Counter[str]()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        shares[component(stack.split(";"))] += int(count)
    return total, shares


def table(raw: str, rate_hz: int = 50) -> str:
    total, shares = breakdown(raw)
    if not total:
        return "py-spy recorded no samples\n"
    lines = [f"| component | share of the operator's CPU samples | CPU s (at {rate_hz} Hz) |",
             "|---|---|---|"]
    for name, n in shares.most_common():
        lines.append(f"| {name} | {100 * n / total:.1f} % | {n / rate_hz:.1f} |")
    lines.append(f"| all | {total} samples | {total / rate_hz:.1f} |")
    return "\n".join(lines) + "\n"


class Recorder:
    """py-spy sampling one process until :meth:`stop` (None when py-spy is absent)."""

    RATE_HZ = 50

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        exe = shutil.which("py-spy")
        self.proc: subprocess.Popen[bytes] | None = None
        if exe is None:
            print("profile: py-spy not found (pip install py-spy); not profiled",
                  file=sys.stderr)
            return
        self.proc = subprocess.Popen(
            [exe, "record", "-p", str(pid), "-r", str(self.RATE_HZ), "-f", "raw",
             "-o", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> str | None:
        """Stop sampling; the table, or None when nothing was recorded."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None
        if not self.out.is_file():
            return None
        return table(self.out.read_text(), self.RATE_HZ)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: cpu_profile.py FILE.raw", file=sys.stderr)
        raise SystemExit(2)
    print(table(Path(sys.argv[1]).read_text()), end="")
