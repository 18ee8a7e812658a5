"""The control plane is real: controllers, garbage collection, RBAC, SA tokens, helm."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubeutil import Cluster, wait_for

pytestmark = pytest.mark.integration


def _exists(cluster: Cluster, namespace: str, *what: str) -> bool:
    proc = cluster.kubectl("get", *what, "-n", namespace, "-o", "name", check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def test_owner_reference_garbage_collection(kube_cluster: Cluster, namespace: str) -> None:
    kube_cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = kube_cluster.get_json("configmap", "owner", "-n", namespace)["metadata"]["uid"]
    for child in ("child-a", "child-b"):
        kube_cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": child,
                    "namespace": namespace,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
                    ],
                },
            }
        )
    kube_cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for(
        lambda: (
            not _exists(
                kube_cluster, namespace, "configmap", "child-a", "child-b", "--ignore-not-found"
            )
        ),
        timeout=60,
        what="garbage collector to delete the owned ConfigMaps",
    )


def test_deployment_cascade_creates_and_deletes(kube_cluster: Cluster, namespace: str) -> None:
    kube_cluster.kubectl(
        "create",
        "deployment",
        "web",
        "--image=example.invalid/web:1",
        "--replicas=2",
        "-n",
        namespace,
    )
    wait_for(
        lambda: _exists(kube_cluster, namespace, "replicaset", "-l", "app=web"),
        timeout=30,
        what="Deployment controller to create a ReplicaSet",
    )
    wait_for(
        lambda: len(kube_cluster.get_json("pods", "-n", namespace, "-l", "app=web")["items"]) == 2,
        timeout=30,
        what="ReplicaSet controller to create 2 pods",
    )
    kube_cluster.kubectl("delete", "deployment", "web", "-n", namespace, "--wait=false")
    wait_for(
        lambda: not _exists(kube_cluster, namespace, "replicaset,pods", "-l", "app=web"),
        timeout=60,
        what="ReplicaSet and pods of the deleted Deployment to go",
    )


def test_rbac_is_enforced(kube_cluster: Cluster, namespace: str) -> None:
    sa = f"system:serviceaccount:{namespace}:default"
    denied = kube_cluster.kubectl(
        "auth", "can-i", "list", "pods", "-n", namespace, f"--as={sa}", check=False
    )
    assert denied.stdout.strip() == "no", denied.stdout + denied.stderr
    kube_cluster.kubectl(
        "create",
        "rolebinding",
        "view",
        "--clusterrole=view",
        f"--serviceaccount={namespace}:default",
        "-n",
        namespace,
    )
    allowed = wait_for(
        lambda: (
            kube_cluster.kubectl(
                "auth", "can-i", "list", "pods", "-n", namespace, f"--as={sa}", check=False
            ).stdout.strip()
            == "yes"
        ),
        timeout=20,
        what="RoleBinding to take effect",
    )
    assert allowed


def test_service_account_tokens_authenticate(
    kube_cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    token = kube_cluster.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    assert token.count(".") == 2
    # A kubeconfig with only the token (the admin one carries a client certificate, which the
    # API server would authenticate first).
    config = json.loads(
        kube_cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout
    )
    user = config["users"][0]
    user["user"] = {"token": token}
    token_kubeconfig = tmp_path / "token.kubeconfig"
    token_kubeconfig.write_text(json.dumps(config))
    who = subprocess.run(
        [
            str(kube_cluster.kubectl_bin),
            f"--kubeconfig={token_kubeconfig}",
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert who.stdout.strip() == f"system:serviceaccount:{namespace}:default"


def test_helm_installs_a_chart(kube_cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    if kube_cluster.helm is None:
        pytest.fail("helm binary not available: wattserve dev-cluster build", pytrace=False)
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n"
    )
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    proc = subprocess.run(
        [
            str(kube_cluster.helm),
            "install",
            "tiny",
            str(chart),
            "-n",
            namespace,
            "--kubeconfig",
            str(kube_cluster.kubeconfig),
            "--wait",
            "--timeout",
            "60s",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=kube_cluster.env,
    )
    assert proc.returncode == 0, proc.stderr
    cm = kube_cluster.get_json("configmap", "tiny-cm", "-n", namespace)
    assert cm["data"]["greeting"] == "hello"
