"""Shared pytest fixtures (tests/ and e2e/): one real Kubernetes cluster per session.

``kube_cluster`` (session scope, lazy — only tests that ask for it start anything):

* ``WATTSERVE_TEST_CLUSTER=skip``: integration tests are skipped (explicit opt-out only);
* ``KUBECONFIG`` set and the API server answers ``/readyz``: that cluster is reused (kind, ...);
* otherwise the dev cluster (``wattserve dev-cluster``) is built if needed, started in a
  private state directory for this session with the real node (where the machine can run
  one: root, Linux, the packages of scripts/setup.d/15-realnode.sh; not with
  ``WATTSERVE_TEST_REAL_NODE=0``), and torn down at the end.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

from kubeutil import Cluster, find_binary, unique_name, wait_for

REPO_ROOT = Path(__file__).resolve().parent


def _log(msg: str) -> None:
    # Visible even with captured output: fixtures run outside test capture at session scope.
    sys.stderr.write(f"[kube_cluster] {msg}\n")
    sys.stderr.flush()


def _external_cluster() -> Cluster | None:
    from wattserve.devcluster.components import binary_paths

    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        return None
    bins = binary_paths()
    kubectl = find_binary("kubectl", bins["kubectl"])
    if kubectl is None:
        return None
    path = Path(kubeconfig.split(os.pathsep)[0]).expanduser()
    cluster = Cluster(
        kubeconfig=path,
        kubectl_bin=kubectl,
        bin_dir=kubectl.parent,
        helm=find_binary("helm", bins["helm"]),
        external=True,
    )
    if not path.is_file() or not cluster.reachable():
        _log(f"KUBECONFIG={kubeconfig} is not reachable; starting the dev cluster instead")
        return None
    _log(f"reusing the cluster of KUBECONFIG={kubeconfig}")
    return cluster


@pytest.fixture(scope="session")
def kube_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A reachable Kubernetes cluster for the whole session (see module docstring)."""
    if os.environ.get("WATTSERVE_TEST_CLUSTER", "").lower() == "skip":
        pytest.skip("WATTSERVE_TEST_CLUSTER=skip: integration tests disabled")
    external = _external_cluster()
    if external is not None:
        yield external
        return

    from wattserve.devcluster import control_plane
    from wattserve.devcluster.components import binary_paths

    request.getfixturevalue("devcluster_binaries")
    state_dir = tmp_path_factory.mktemp("devcluster")
    # The session cluster gets the machine's one real node (where it can run one); clusters
    # that tests start themselves run kwok alone (control_plane.up's default).
    # WATTSERVE_NODE_IMAGES=0: the node without the operator/serving images (faster start).
    # WATTSERVE_TEST_REAL_NODE=0: kwok pools alone (e.g. while another run holds the node).
    images = os.environ.get("WATTSERVE_NODE_IMAGES", "1") != "0"
    real_node = os.environ.get("WATTSERVE_TEST_REAL_NODE", "1") != "0"
    if not real_node:
        _log("WATTSERVE_TEST_REAL_NODE=0: no real node; running the kwok pools alone")
    else:
        request.getfixturevalue("_real_node_lock")
    st = control_plane.up(
        state_dir, echo=_log, die_with_parent=True, real_node=real_node, node_images=images
    )
    bins = binary_paths()
    try:
        yield Cluster(
            kubeconfig=st.kubeconfig,
            kubectl_bin=bins["kubectl"],
            bin_dir=bins["kubectl"].parent,
            helm=bins["helm"],
            extra={"state_dir": state_dir, "api_port": st.api_port},
        )
    finally:
        control_plane.down(state_dir)
        _log("dev cluster stopped")


_REAL_NODE_LOCK: list[object] = []  # the open lock file, held until the process exits


def _take_real_node_lock() -> None:
    """The machine runs one real node: sessions that want it take turns (bounded wait).

    Taken once per process, before the first test when collection shows a test that needs the
    session cluster (so the wait does not count against a test's timeout), else lazily.
    """
    import fcntl
    import time

    if _REAL_NODE_LOCK:
        return
    path = os.environ.get("WATTSERVE_REAL_NODE_LOCK", "/tmp/wattserve-realnode.lock")
    limit = float(os.environ.get("WATTSERVE_REAL_NODE_WAIT", "3600"))
    fh = open(path, "a+")  # noqa: SIM115 - held for the whole session, closed at exit
    start = time.monotonic()
    next_note = 0.0
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            waited = time.monotonic() - start
            if waited > limit:
                fh.close()
                pytest.exit(f"the real node stayed held by another run for {limit:.0f} s", 3)
            if waited >= next_note:
                _log(f"waiting for the real node ({path} held by another run), {waited:.0f} s")
                next_note += 30
            time.sleep(1)
    _REAL_NODE_LOCK.append(fh)


def _wants_real_node() -> bool:
    return (
        os.environ.get("WATTSERVE_TEST_CLUSTER", "").lower() != "skip"
        and os.environ.get("WATTSERVE_TEST_REAL_NODE", "1") != "0"
        and not os.environ.get("KUBECONFIG")
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if _wants_real_node() and any(
        "kube_cluster" in getattr(item, "fixturenames", ()) for item in session.items
    ):
        _take_real_node_lock()


@pytest.fixture(scope="session")
def _real_node_lock() -> None:
    _take_real_node_lock()


@pytest.fixture(scope="session")
def devcluster_binaries() -> None:
    """The dev-cluster binaries exist (built on first use) — for tests that run their own."""
    if os.environ.get("WATTSERVE_TEST_CLUSTER", "").lower() == "skip":
        pytest.skip("WATTSERVE_TEST_CLUSTER=skip: integration tests disabled")
    from wattserve.devcluster import build
    from wattserve.devcluster.components import missing_binaries

    if missing_binaries() or missing_binaries(node=True):
        _log("dev-cluster binaries missing; building them (first time only)")
        build.build_all(echo=_log)


@pytest.fixture
def namespace(kube_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) after the test."""
    name = unique_name("wst")
    kube_cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            kube_cluster.kubectl(
                "get", "serviceaccount", "default", "-n", name, check=False
            ).returncode
            == 0
        ),
        timeout=30,
        what=f"ServiceAccount default in namespace {name}",
    )
    try:
        yield name
    finally:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the cluster fixtures are integration tests, marked or not."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        uses_cluster = {"kube_cluster", "devcluster_binaries"} & set(fixtures)
        if uses_cluster and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
