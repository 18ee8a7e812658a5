"""What a real node changes on the host, recorded before it starts and put back after it stops.

A kubelet, kube-proxy, containerd and the CNI plugins change the machine they run on: kernel
sysctls, iptables chains (``KUBE-*``, ``CNI-*``), a bridge and veth pairs, network namespaces
under ``/run/netns``, cgroups (``kubepods``), and mounts (the kubelet's root dir, volumes,
overlay rootfs).  :func:`snapshot` records what is there before; :func:`restore` removes what
was added and writes the old sysctl values back.  Both only touch things a node makes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

SYSCTLS = (
    # kubelet's kernel tunables (protectKernelDefaults=false lets it set them)
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    # the CNI bridge and kube-proxy
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
CHAIN_PREFIXES = ("KUBE-", "CNI-")
TABLES = ("filter", "nat", "mangle", "raw")
IPTABLES = ("iptables", "ip6tables")
# Pods only (cgroupfs driver: /kubepods). Not containerd's own "k8s.io" group: another
# containerd on this machine (image builds, `ctr run`) may create it, and its processes are
# not ours to kill.
CGROUP_ROOTS = ("kubepods", "kubepods.slice")
NETNS_DIR = Path("/run/netns")
SYS_ROOT = Path("/proc/sys")
CGROUP_FS = Path("/sys/fs/cgroup")


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = (SYS_ROOT / name).read_text().strip()
    return values


def chains(binary: str, table: str) -> list[str]:
    out = _run([f"{binary}-save", "-t", table])
    return [line[1:].split()[0] for line in out.splitlines() if line.startswith(":")]


def _cgroup_dirs() -> list[Path]:
    """Every cgroup directory a node may create, in each mounted hierarchy (v1 and v2)."""
    found: list[Path] = []
    roots = (
        [CGROUP_FS] + [p for p in CGROUP_FS.iterdir() if p.is_dir()] if CGROUP_FS.is_dir() else []
    )
    for root in roots:
        for name in CGROUP_ROOTS:
            if (root / name / "cgroup.procs").exists():
                found.append(root / name)
    return found


def _netns() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except OSError:
        return []


def snapshot() -> dict[str, Any]:
    """The host as it is before the node starts (JSON-serialisable)."""
    return {
        "sysctls": read_sysctls(),
        "chains": {
            binary: {table: chains(binary, table) for table in TABLES} for binary in IPTABLES
        },
        "cgroups": [str(p) for p in _cgroup_dirs()],
        "netns": _netns(),
    }


def set_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (SYS_ROOT / name).write_text(value + "\n")


def kill_cgroup_processes(before: list[str]) -> int:
    """SIGKILL every process in a node cgroup that did not exist before; return how many."""
    keep = set(before)
    killed = 0
    for top in _cgroup_dirs():
        if str(top) in keep:
            continue
        for procs in (d / "cgroup.procs" for d in _subdirs(top, with_top=True)):
            try:
                pids = [int(x) for x in procs.read_text().split()]
            except (OSError, ValueError):
                continue
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed


def _subdirs(top: Path, with_top: bool = False) -> list[Path]:
    """Directories below ``top``; cgroups that vanish during the walk (a container's, as its
    runtime exits) are skipped, not an error (os.walk ignores them; Path.rglob raises)."""
    out = [Path(root) / name for root, names, _ in os.walk(top) for name in names]
    return [top, *out] if with_top else out


def _remove_cgroups(before: list[str]) -> list[str]:
    keep = set(before)
    left = []
    for top in _cgroup_dirs():
        if str(top) in keep:
            continue
        dirs = sorted(_subdirs(top), key=lambda p: -len(p.parts))
        for d in [*dirs, top]:
            try:
                d.rmdir()
            except OSError:
                left.append(str(d))
    return left


def mounts_under(prefixes: list[Path]) -> list[str]:
    """Mount points at or below any of ``prefixes`` (deepest first)."""
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            for prefix in prefixes:
                if point == str(prefix) or point.startswith(str(prefix).rstrip("/") + "/"):
                    points.append(point)
                    break
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount_all(prefixes: list[Path]) -> list[str]:
    """Lazily unmount everything below ``prefixes``; return what is still mounted."""
    for _ in range(3):
        points = mounts_under(prefixes)
        if not points:
            return []
        for point in points:
            _run(["umount", "-l", point])
    return mounts_under(prefixes)


def _iptables_cleanup(before: dict[str, dict[str, list[str]]]) -> list[str]:
    """Delete KUBE-/CNI- chains that were not there before, and every rule jumping to them."""
    left = []
    for binary in IPTABLES:
        for table in TABLES:
            old = set(before.get(binary, {}).get(table, []))
            dump = _run([f"{binary}-save", "-t", table])
            new = [
                c for c in chains(binary, table) if c.startswith(CHAIN_PREFIXES) and c not in old
            ]
            if not new:
                continue
            script = [f"*{table}"]
            for line in dump.splitlines():
                if not line.startswith("-A "):
                    continue
                parts = line.split()
                chain = parts[1]
                target = parts[parts.index("-j") + 1] if "-j" in parts else ""
                if chain not in new and target in new:
                    script.append("-D " + line[3:])
            script += [f"-F {c}" for c in new] + [f"-X {c}" for c in new] + ["COMMIT", ""]
            _run([f"{binary}-restore", "--noflush"], stdin="\n".join(script))
            still = [c for c in chains(binary, table) if c in new]
            left += [f"{binary} -t {table} {c}" for c in still]
    return left


def delete_links(names: list[str]) -> None:
    for name in names:
        if Path(f"/sys/class/net/{name}").exists():
            _run(["ip", "link", "delete", name])


def restore(before: dict[str, Any], mount_prefixes: list[Path], links: list[str]) -> list[str]:
    """Put the host back as :func:`snapshot` found it; return what could not be undone."""
    problems: list[str] = []
    kill_cgroup_processes(before.get("cgroups", []))
    old_ns = set(before.get("netns", []))
    new_ns = [NETNS_DIR / n for n in _netns() if n not in old_ns and n.startswith("cni-")]
    problems += [f"mount {m}" for m in unmount_all([*mount_prefixes, *new_ns])]
    for ns in new_ns:
        with contextlib.suppress(OSError):
            ns.unlink()
    delete_links(links)
    problems += [f"iptables chain {c}" for c in _iptables_cleanup(before.get("chains", {}))]
    problems += [f"cgroup {c}" for c in _remove_cgroups(before.get("cgroups", []))]
    current = read_sysctls()
    for name, value in before.get("sysctls", {}).items():
        if current.get(name) != value:
            set_sysctl(name, value)
    after = read_sysctls()
    problems += [
        f"sysctl {n}={after.get(n)} (was {v})"
        for n, v in before.get("sysctls", {}).items()
        if after.get(n) != v
    ]
    return problems


def differences(before: dict[str, Any]) -> list[str]:
    """How the host differs from ``before`` now (empty: fully restored)."""
    now = snapshot()
    diffs = [
        f"sysctl {n}: {v} -> {now['sysctls'].get(n)}"
        for n, v in before["sysctls"].items()
        if now["sysctls"].get(n) != v
    ]
    for binary in IPTABLES:
        for table in TABLES:
            extra = set(now["chains"][binary][table]) - set(before["chains"][binary][table])
            diffs += [f"{binary} -t {table}: new chain {c}" for c in sorted(extra)]
    diffs += [f"cgroup {c}" for c in set(now["cgroups"]) - set(before["cgroups"])]
    diffs += [f"netns {n}" for n in set(now["netns"]) - set(before["netns"])]
    return diffs
