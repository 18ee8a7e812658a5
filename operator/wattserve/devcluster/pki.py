"""A throw-away PKI for the dev cluster: one CA, serving and client certificates, SA keys.

Uses the ``cryptography`` package (EC P-256 keys; fast to generate).  Everything is written
under ``<state>/pki/`` with 0600 keys.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)

# (file stem, common name, organisation) of every client certificate the cluster needs.
CLIENTS: tuple[tuple[str, str, str | None], ...] = (
    ("admin", "kubernetes-admin", "system:masters"),
    ("kube-controller-manager", "system:kube-controller-manager", None),
    ("kube-scheduler", "system:kube-scheduler", None),
    # kwok plays every kubelet (node status, leases, pod status): give it full rights.
    ("kwok", "kwok-controller", "system:masters"),
)
# Client certificate the apiserver presents to aggregated API servers (front proxy).
FRONT_PROXY_CLIENT = ("front-proxy-client", "front-proxy-client", None)
# Client certificate the apiserver presents to kubelets (logs, exec, port-forward).
KUBELET_CLIENT = ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")


@dataclass(frozen=True)
class Pki:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    def cert(self, stem: str) -> Path:
        return self.root / f"{stem}.crt"

    def key(self, stem: str) -> Path:
        return self.root / f"{stem}.key"


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def issue(
    pki: Pki,
    stem: str,
    cn: str,
    org: str | None = None,
    server_sans: list[str] | None = None,
) -> None:
    """Issue one more certificate from the CA on disk: a client certificate, or a serving
    certificate for ``server_sans`` (IP addresses or DNS names)."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki.ca_key}: not an EC key")
    ca_name = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).subject
    sans: list[x509.GeneralName] | None = None
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server_sans is not None:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        sans = []
        for name in server_sans:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
    key, cert = _issue(ca_key, ca_name, _name(cn, org), usages, sans)
    _write_key(pki.key(stem), key)
    _write_cert(pki.cert(stem), cert)


def create_pki(root: Path, service_ip: str = "10.96.0.1", extra_ips: tuple[str, ...] = ()) -> Pki:
    """Write CA, apiserver serving cert, client certs and the service-account key pair.

    ``extra_ips``: more addresses the apiserver serves on (the real node's pod-reachable IP).
    """
    root.mkdir(parents=True, exist_ok=True)
    pki = Pki(root)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("wattserve-dev-cluster-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca_cert)

    sans: list[x509.GeneralName] = [
        x509.DNSName(n)
        for n in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    sans += [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip, *extra_ips)
    ]
    key, cert = _issue(
        ca_key, ca_name, _name("kube-apiserver"), [ExtendedKeyUsageOID.SERVER_AUTH], sans
    )
    _write_key(pki.key("apiserver"), key)
    _write_cert(pki.cert("apiserver"), cert)

    for stem, cn, org in (*CLIENTS, FRONT_PROXY_CLIENT, KUBELET_CLIENT):
        key, cert = _issue(ca_key, ca_name, _name(cn, org), [ExtendedKeyUsageOID.CLIENT_AUTH])
        _write_key(pki.key(stem), key)
        _write_cert(pki.cert(stem), cert)

    # Service-account tokens are signed with RSA (RS256 is what every consumer expects).
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
