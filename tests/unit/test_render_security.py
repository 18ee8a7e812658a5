"""Every rendered Deployment pod is hardened: restricted securityContext on every container
(init containers too), no service-account token, read-only root for llama.cpp, bounded
emptyDirs, and the API-key Secret wired when configured. The same pods are admitted by a
real API server under the restricted Pod Security Standard in tests/integration."""

from __future__ import annotations

from typing import Any

import pytest
from wattserve.render import RenderSettings, render_deployment
from wattserve.render.security import harden_container

from tests.unit.test_render_support import (
    cpu_inputs,
    env_of,
    example_md_doc,
    gpu_inputs,
    inputs_for,
)


def _pod(inputs: Any) -> dict[str, Any]:
    return render_deployment(inputs)["spec"]["template"]["spec"]


def _hf_inputs(**kw: Any) -> Any:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["model"]["source"] = "hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
    return inputs_for(doc, **kw)


def _restricted(container: dict[str, Any]) -> None:
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["runAsNonRoot"] is True
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("make", [cpu_inputs, gpu_inputs, _hf_inputs])
def test_every_container_is_restricted_and_no_token_is_mounted(make: Any) -> None:
    pod = _pod(make())
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        _restricted(container)  # before: fetch-model had no securityContext
    assert pod["automountServiceAccountToken"] is False  # before: token mounted
    for volume in pod.get("volumes", []):
        if "emptyDir" in volume:
            assert volume["emptyDir"]["sizeLimit"]  # before: unbounded download dir


def test_llamacpp_root_is_read_only_with_a_bounded_tmp() -> None:
    pod = _pod(cpu_inputs())
    serving = pod["containers"][0]
    assert serving["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in serving["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"]


def test_vllm_root_stays_writable() -> None:  # vLLM/torch/triton write caches under $HOME
    serving = _pod(gpu_inputs())["containers"][0]
    assert "readOnlyRootFilesystem" not in serving["securityContext"]


def test_fetch_container_gets_the_download_bound() -> None:
    pod = _pod(_hf_inputs())
    fetch = pod["initContainers"][0]
    limit = int(env_of(fetch)["WATTSERVE_FETCH_MAX_BYTES"])
    models = next(v for v in pod["volumes"] if v["name"] == "models")
    assert limit == int(models["emptyDir"]["sizeLimit"].removesuffix("Gi")) << 30


def test_api_key_secret_is_mounted_and_named_to_the_server() -> None:
    settings = RenderSettings(api_key_secret="llm-keys", api_key_key="keys")
    pod = _pod(cpu_inputs(settings=settings))
    serving = pod["containers"][0]
    assert env_of(serving)["WATTSERVE_API_KEY_FILE"] == "/var/run/wattserve/api-keys/keys"
    assert {"name": "api-keys", "mountPath": "/var/run/wattserve/api-keys",
            "readOnly": True} in serving["volumeMounts"]
    assert {"name": "api-keys", "secret": {"secretName": "llm-keys",
                                           "defaultMode": 0o440}} in pod["volumes"]
    assert "WATTSERVE_API_KEY_FILE" not in env_of(_pod(cpu_inputs())["containers"][0])


def test_hardening_overrides_what_the_profile_forbids() -> None:
    out = harden_container({"name": "x", "securityContext": {
        "privileged": True, "allowPrivilegeEscalation": True,
        "capabilities": {"add": ["NET_ADMIN"]}, "readOnlyRootFilesystem": True}})
    _restricted(out)
    assert "privileged" not in out["securityContext"]
    assert out["securityContext"]["readOnlyRootFilesystem"] is True
