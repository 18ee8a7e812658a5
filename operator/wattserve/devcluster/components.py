"""What the dev cluster is built from: Go modules, versions, binaries, and where they live.

Each component is a tiny Go module kept in ``gomod/<component>/`` (go.mod + go.sum, with
``tool`` directives naming the main packages).  Binaries are built once into
``$WATTSERVE_CACHE/bin/<component>-<version>/`` and reused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

GOMOD_ROOT = Path(__file__).resolve().parent / "gomod"

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"
KUBERAY_VERSION = "v1.5.0"
COREDNS_VERSION = "v1.15.0"
# Helm v3.22 is built against the Kubernetes 1.37 client libraries.
HELM_K8S_MINOR = "37"


def _k8s_version_ldflags(version: str) -> list[str]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.gitCommit=0000000000000000000000000000000000000000",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return flags


@dataclass(frozen=True)
class Component:
    """One Go module and the binaries built from it."""

    name: str
    version: str
    packages: dict[str, str]  # binary name -> Go main package
    ldflags: list[str] = field(default_factory=list)

    @property
    def gomod_dir(self) -> Path:
        return GOMOD_ROOT / self.name

    @property
    def binaries(self) -> list[str]:
        return list(self.packages)

    def bin_dir(self, cache: Path) -> Path:
        return cache / "bin" / f"{self.name}-{self.version}"


COMPONENTS: tuple[Component, ...] = (
    Component(
        name="etcd",
        version=ETCD_VERSION,
        packages={"etcd": "go.etcd.io/etcd/server/v3"},
    ),
    Component(
        name="kwok",
        version=KWOK_VERSION,
        packages={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
        ldflags=[f"-X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}"],
    ),
    Component(
        name="helm",
        version=HELM_VERSION,
        packages={"helm": "helm.sh/helm/v3/cmd/helm"},
        ldflags=[
            f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={HELM_K8S_MINOR}",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={HELM_K8S_MINOR}",
        ],
    ),
    Component(
        name="kubernetes",
        version=KUBERNETES_VERSION,
        packages={
            name: f"k8s.io/kubernetes/cmd/{name}"
            for name in (
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubectl",
                "kubelet",
                "kube-proxy",
            )
        },
        ldflags=_k8s_version_ldflags(KUBERNETES_VERSION),
    ),
    # The KubeRay operator (RayService/RayCluster controllers); CRDs come from the same module.
    Component(
        name="kuberay",
        version=KUBERAY_VERSION,
        packages={"kuberay-operator": "github.com/ray-project/kuberay/ray-operator"},
    ),
    Component(
        name="coredns",
        version=COREDNS_VERSION,
        packages={"coredns": "github.com/coredns/coredns"},
        ldflags=["-X github.com/coredns/coredns/coremain.GitCommit=v1.15.0"],
    ),
)

# Binaries only the real node needs: without them `up` runs the kwok pools alone.
NODE_BINARIES = ("kubelet", "kube-proxy", "coredns")

COMPONENT_BY_NAME = {c.name: c for c in COMPONENTS}


def cache_dir() -> Path:
    """``$WATTSERVE_CACHE`` or ``~/.cache/wattserve``."""
    env = os.environ.get("WATTSERVE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wattserve"


def binary_paths(cache: Path | None = None) -> dict[str, Path]:
    """Binary name -> path where ``build`` puts it (it may not exist yet)."""
    root = cache or cache_dir()
    return {binary: comp.bin_dir(root) / binary for comp in COMPONENTS for binary in comp.binaries}


def missing_binaries(cache: Path | None = None, node: bool = False) -> list[str]:
    """Control-plane binaries not built yet (``node=True``: the real node's instead)."""
    return [
        name
        for name, path in binary_paths(cache).items()
        if (name in NODE_BINARIES) == node and not os.access(path, os.X_OK)
    ]
