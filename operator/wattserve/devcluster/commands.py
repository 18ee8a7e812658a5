"""Command lines of the control-plane components (bound to 127.0.0.1; with a real node the
API server also listens on the node address, see realnode.py)."""

from __future__ import annotations

from pathlib import Path

from wattserve.devcluster.pki import Pki
from wattserve.devcluster.state import ClusterState

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_STAGES_DIR = Path(__file__).resolve().parent / "kwok"
KWOK_STAGES = (
    "node-initialize.yaml",
    "node-heartbeat-with-lease.yaml",
    "pod-ready.yaml",
    "pod-complete.yaml",
    "pod-delete.yaml",
)


def etcd_cmd(binary: Path, st: ClusterState, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(binary),
        "--name=dev",
        f"--data-dir={st.root / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=dev={peer}",
        "--initial-cluster-state=new",
        # A throw-away dev store: durability is not worth the fsync latency.
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=4294967296",
        "--auto-compaction-retention=5m",
        "--log-level=warn",
    ]


def _address_flags(node_ip: str | None, ca: Path) -> list[str]:
    if node_ip is None:
        return [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # No kubelet/pod can reach 127.0.0.1, and Endpoints may not hold loopback
            # addresses: leave the `kubernetes` Service without endpoints instead.
            "--endpoint-reconciler-type=none",
        ]
    # A real node: pods reach the API server on the node address (the `kubernetes`
    # Service's endpoint, kept by the lease reconciler); host clients keep using 127.0.0.1.
    return [
        "--bind-address=0.0.0.0",
        f"--advertise-address={node_ip}",
        "--endpoint-reconciler-type=lease",
        "--kubelet-preferred-address-types=InternalIP",
        # The real kubelet's serving certificate is signed by the dev CA (kwok's is not).
        f"--kubelet-certificate-authority={ca}",
    ]


def apiserver_cmd(
    binary: Path,
    st: ClusterState,
    pki: Pki,
    port: int,
    etcd_port: int,
    node_ip: str | None = None,
) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        *_address_flags(node_ip, pki.ca_cert),
        f"--secure-port={port}",
        f"--cert-dir={st.root / 'certs' / 'kube-apiserver'}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        # Kubelets authenticate the API server by this certificate (no anonymous access).
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        # Front proxy (aggregated APIs such as metrics-server) with the same CA.
        f"--requestheader-client-ca-file={pki.ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.cert('front-proxy-client')}",
        f"--proxy-client-key-file={pki.key('front-proxy-client')}",
        # The default admission plugins stay on; NodeRestriction is added as kubeadm does.
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--profiling=false",
        "--event-ttl=1h",
        "--max-requests-inflight=800",
        "--max-mutating-requests-inflight=400",
    ]


def controller_manager_cmd(binary: Path, st: ClusterState, pki: Pki, port: int) -> list[str]:
    kubeconfig = st.component_kubeconfig("kube-controller-manager")
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={st.root / 'certs' / 'kube-controller-manager'}",
        "--leader-elect=false",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        "--use-service-account-credentials=true",
        "--controllers=*,bootstrap-signer-controller,token-cleaner-controller",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--cluster-name=wattserve-dev",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--concurrent-deployment-syncs=10",
        "--concurrent-replicaset-syncs=10",
        "--concurrent-gc-syncs=20",
    ]


def scheduler_cmd(binary: Path, st: ClusterState, port: int) -> list[str]:
    kubeconfig = st.component_kubeconfig("kube-scheduler")
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={st.root / 'certs' / 'kube-scheduler'}",
        "--leader-elect=false",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
    ]


def kwok_cmd(binary: Path, st: ClusterState, port: int) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={st.component_kubeconfig('kwok')}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-ip=10.0.0.1",
        f"--cidr={POD_CIDR}",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{port}",
        *(f"--config={KWOK_STAGES_DIR / name}" for name in KWOK_STAGES),
    ]
