"""containerd for the real node: its own config, root, state and socket; the node's base images.

Debian's containerd 1.6 package is used as a plain process (never its system service).  The
CRI plugin is set up for this kind of machine (see docs/devcluster.md): a local sandbox
(pause) image, ``restrict_oom_score_adj`` (root here may lack CAP_SYS_RESOURCE, and runc then
fails every sandbox), no AppArmor, runc with cgroupfs.

The pause image and a busybox image (for tests and debugging) are built here without any
registry: a busybox-static root filesystem, ``umoci`` into an OCI layout, ``ctr images
import``.  The archive is cached in ``$WATTSERVE_CACHE/images/`` keyed by its inputs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PAUSE_IMAGE = "localhost/wattserve/pause:1"
BUSYBOX_IMAGE = "localhost/wattserve/busybox:1"
K8S_NAMESPACE = "k8s.io"
BUSYBOX_BINARY = Path("/bin/busybox")
_PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
_IMAGES = {  # OCI layout tag -> (final name, entrypoint, user)
    "pause": (PAUSE_IMAGE, ["/bin/sh", "-c", _PAUSE_SCRIPT], "65535:65535"),
    "busybox": (BUSYBOX_IMAGE, ["/bin/sh"], "65534:65534"),
}
_BASE_NAME = "localhost/wattserve/node-base"


@dataclass(frozen=True)
class Paths:
    """Where this containerd keeps things (socket and state under /run: short paths)."""

    root: Path  # images, snapshots (in the cluster's state dir)
    state: Path  # shims, task bundles
    conf_dir: Path  # config.toml lives here
    cni_conf_dir: Path

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.conf_dir / "containerd.toml"


def config_toml(paths: Paths, cni_bin_dir: Path, metrics_port: int) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{paths.root}"
state = "{paths.state}"
oom_score = 0

[grpc]
  address = "{paths.socket}"

[ttrpc]
  address = "{paths.state}/containerd.sock.ttrpc"

[metrics]
  address = "127.0.0.1:{metrics_port}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.root}/opt"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{cni_bin_dir}"
  conf_dir = "{paths.cni_conf_dir}"
  max_conf_num = 1
"""


def write_config(paths: Paths, cni_bin_dir: Path, metrics_port: int) -> Path:
    for d in (paths.root, paths.state, paths.conf_dir):
        d.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(config_toml(paths, cni_bin_dir, metrics_port))
    return paths.config


def command(binary: str, paths: Paths) -> list[str]:
    return [binary, "--config", str(paths.config), "--log-level", "warn"]


def ctr(paths: Paths, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = ["ctr", "--address", str(paths.socket), "--namespace", K8S_NAMESPACE, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _image_key() -> str:
    digest = hashlib.sha256(BUSYBOX_BINARY.read_bytes())
    digest.update(repr(sorted(_IMAGES.items())).encode())
    return digest.hexdigest()[:16]


def _sh(argv: list[str], cwd: Path | None = None) -> None:
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if res.returncode != 0:
        raise OSError(f"{' '.join(argv[:3])} failed: {res.stderr.strip()[-300:]}")


def _rootfs(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX_BINARY, root / "bin" / "busybox")
    _sh([str(root / "bin" / "busybox"), "--install", "-s", str(root / "bin")])
    # --install links to the absolute path of the running binary: point them at /bin/busybox
    for link in (root / "bin").iterdir():
        if link.is_symlink():
            link.unlink()
            link.symlink_to("busybox")
    for d in ("etc", "tmp", "www", "proc", "sys", "dev"):
        (root / d).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "www" / "index.html").write_text("wattserve real node\n")


def node_image_archive(cache: Path) -> Path:
    """The OCI archive holding the pause and busybox images (built once, cached)."""
    out = cache / "images" / f"node-base-{_image_key()}.tar"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wattserve-node-image-") as tmp:
        work = Path(tmp)
        rootfs, layout = work / "rootfs", work / "layout"
        _rootfs(rootfs)
        _sh(["umoci", "init", "--layout", str(layout)])
        for tag, (_name, entrypoint, user) in _IMAGES.items():
            image = f"{layout}:{tag}"
            _sh(["umoci", "new", "--image", image])
            _sh(["umoci", "insert", "--image", image, str(rootfs), "/"])
            argv = ["umoci", "config", "--image", image, f"--config.user={user}"]
            argv += [f"--config.entrypoint={part}" for part in entrypoint]
            argv += ["--config.workingdir=/", "--config.env=PATH=/bin"]
            _sh(argv)
        _sh(["umoci", "gc", "--layout", str(layout)])
        partial = out.with_suffix(f".tmp{os.getpid()}")
        _sh(["tar", "-C", str(layout), "-cf", str(partial), "."])
        partial.replace(out)
    return out


def import_node_images(paths: Paths, archive: Path) -> None:
    """Import the pause and busybox images into the k8s.io namespace under their names."""
    res = ctr(paths, "images", "import", "--base-name", _BASE_NAME, str(archive))
    if res.returncode != 0:
        raise OSError(f"ctr images import {archive}: {res.stderr.strip()[-300:]}")
    for tag, (name, _entrypoint, _user) in _IMAGES.items():
        res = ctr(paths, "images", "tag", "--force", f"{_BASE_NAME}:{tag}", name)
        if res.returncode != 0:
            raise OSError(f"ctr images tag {name}: {res.stderr.strip()[-300:]}")


def shim_pids(paths: Paths) -> list[int]:
    """containerd-shim processes serving this containerd (they outlive it if not stopped)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"containerd-shim-runc-v2")
            and str(paths.socket).encode() in argv
        ):
            pids.append(int(proc.name))
    return pids
