"""Model sources -> volumes, mounts and init containers, per scheme."""

from __future__ import annotations

import pytest
from wattserve.api import SpecError
from wattserve.render import RenderSettings, model_storage, render_deployment
from wattserve.render.security import container_security
from wattserve.render.workload import serving_container

from tests.unit.test_render_support import cpu_inputs, env_of, example_md_doc, inputs_for

IMAGE, POLICY = "img:1", "IfNotPresent"


def test_hf_source_downloads_in_an_init_container_into_an_empty_dir() -> None:
    st = model_storage("hf://meta-llama/Llama-3.1-8B", IMAGE, POLICY, RenderSettings())
    (init,) = st.init_containers
    assert init["image"] == IMAGE
    assert init["command"] == ["python", "-m", "wattserve_serving.fetch",
                               "hf://meta-llama/Llama-3.1-8B", "/models"]
    assert st.volumes == ({"name": "models", "emptyDir": {}},)
    assert init["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]
    assert st.mounts == ({"name": "models", "mountPath": "/models", "readOnly": True},)
    assert st.model_path == "/models/meta-llama/Llama-3.1-8B"
    assert "env" not in init


def test_hf_token_comes_from_the_configured_secret_and_is_optional() -> None:
    settings = RenderSettings(hf_token_secret="hf", hf_token_key="tok")
    (init,) = model_storage("hf://org/m", IMAGE, POLICY, settings).init_containers
    assert init["env"] == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "hf", "key": "tok", "optional": True}}}]


def test_shared_cache_pvc_replaces_the_empty_dir() -> None:
    st = model_storage("hf://org/m", IMAGE, POLICY, RenderSettings(model_cache_pvc="cache"))
    assert st.volumes == ({"name": "models", "persistentVolumeClaim": {"claimName": "cache"}},)


def test_s3_source_uses_the_same_init_container_pattern() -> None:
    st = model_storage("s3://bucket/models/m", IMAGE, POLICY, RenderSettings(s3_secret="aws"))
    (init,) = st.init_containers
    assert init["command"][-2:] == ["s3://bucket/models/m", "/models"]
    assert init["envFrom"] == [{"secretRef": {"name": "aws", "optional": True}}]
    assert st.model_path == "/models/bucket/models/m"


def test_pvc_source_is_mounted_read_only_without_init_container() -> None:
    st = model_storage("pvc://weights/llama/8b", IMAGE, POLICY, RenderSettings())
    assert st.init_containers == ()
    assert st.volumes == ({"name": "models", "persistentVolumeClaim": {
        "claimName": "weights", "readOnly": True}},)
    assert st.mounts[0]["readOnly"] is True
    assert st.model_path == "/models/llama/8b"


def test_gguf_source_is_a_file_in_the_image() -> None:
    st = model_storage("gguf:///models/x.gguf", IMAGE, POLICY, RenderSettings())
    assert (st.volumes, st.mounts, st.init_containers) == ((), (), ())
    assert st.model_path == "/models/x.gguf"


@pytest.mark.parametrize("source", ["pvc://Bad_Claim/x", "hf://", "gguf://", "ftp://x/y"])
def test_malformed_sources_raise_spec_error_naming_the_field(source: str) -> None:
    with pytest.raises(SpecError) as info:
        model_storage(source, IMAGE, POLICY, RenderSettings())
    assert info.value.path == "spec.model.source"


def test_deployment_wires_volume_init_container_and_model_path_for_hf() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["model"]["source"] = "hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
    pod = render_deployment(inputs_for(doc))["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] == "fetch-model"
    # the download emptyDir is bounded; /tmp is the only writable path of a read-only root
    assert pod["volumes"] == [{"name": "models", "emptyDir": {"sizeLimit": "2Gi"}},
                              {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    serving = pod["containers"][0]
    assert serving["volumeMounts"] == [{"name": "models", "mountPath": "/models",
                                        "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}]
    assert env_of(serving)["WATTSERVE_MODEL_PATH"] == \
        "/models/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"


def test_gguf_deployment_has_no_volumes() -> None:
    pod = render_deployment(cpu_inputs())["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert "initContainers" not in pod


# -- oci:// model images (KServe modelcar style; containerd 1.6: copy, no image volume) -----

OCI_REF = "ghcr.io/wattserve/model-smollm2-135m:q4_1"


def test_oci_source_copies_the_model_image_into_a_bounded_empty_dir() -> None:
    st = model_storage(f"oci://{OCI_REF}", IMAGE, POLICY, RenderSettings(),
                       weights_bytes=3.5 * 2**30)
    (copy,) = st.init_containers
    assert copy["image"] == OCI_REF
    assert copy["imagePullPolicy"] == POLICY
    assert copy["command"] == ["cp", "-R", "--", "/models/.", "/mnt/models"]
    assert copy["volumeMounts"] == [{"name": "models", "mountPath": "/mnt/models"}]
    # 3.5 GiB of weights * 1.25, rounded up, + 1 GiB
    assert st.volumes == ({"name": "models", "emptyDir": {"sizeLimit": "6Gi"}},)
    assert st.mounts == ({"name": "models", "mountPath": "/models", "readOnly": True},)
    assert st.model_path == "/models"


def test_oci_copy_container_is_restricted_pss_compatible() -> None:
    (copy,) = model_storage(f"oci://{OCI_REF}", IMAGE, POLICY, RenderSettings()).init_containers
    ctx = copy["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["runAsNonRoot"] is True
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctx["readOnlyRootFilesystem"] is True
    assert "memory" in copy["resources"]["limits"]


def test_oci_source_string_never_reaches_a_command_or_env() -> None:
    # A reference can't carry $(VAR) (the grammar refuses it), and the one that is valid
    # appears only as the image: the command is a fixed argv, no shell.
    (copy,) = model_storage(f"oci://{OCI_REF}", IMAGE, POLICY, RenderSettings()).init_containers
    assert all(OCI_REF not in arg for arg in copy["command"])
    assert "args" not in copy and "env" not in copy and "envFrom" not in copy
    with pytest.raises(SpecError):
        model_storage("oci://$(AWS_SECRET_ACCESS_KEY)/x:1", IMAGE, POLICY, RenderSettings())


@pytest.mark.parametrize("ref", [
    "ghcr.io/wattserve/model:q4_1",
    "localhost:5000/models/smollm2",
    "registry.example/a/b@sha256:" + "a" * 64,
    "model-smollm2",
])
def test_valid_oci_references_are_accepted(ref: str) -> None:
    st = model_storage(f"oci://{ref}", IMAGE, POLICY, RenderSettings())
    assert st.init_containers[0]["image"] == ref


@pytest.mark.parametrize("source", [
    "oci://", "oci://UPPER/Case:1", "oci://a/b:tag with space", "oci://a//b", "oci://a/b:",
    "oci://a/b@sha256:short", "oci://-lead/x", "oci://a/b;rm -rf /", "oci://a/b:t\n",
])
def test_malformed_oci_references_raise_spec_error_naming_the_field(source: str) -> None:
    with pytest.raises(SpecError) as info:
        model_storage(source, IMAGE, POLICY, RenderSettings())
    assert info.value.path == "spec.model.source"
    assert "oci://" in str(info.value)


def test_oci_deployment_wires_copy_container_volume_and_model_dir() -> None:
    doc = example_md_doc("smollm2-135m-oci.yaml")
    pod = render_deployment(inputs_for(doc))["spec"]["template"]["spec"]
    (copy,) = pod["initContainers"]
    assert copy["name"] == "copy-model" and copy["image"] == OCI_REF
    # SmolLM2-135M Q4_1 is ~0.1 GiB: the volume is bounded at 2 GiB.
    assert pod["volumes"] == [{"name": "models", "emptyDir": {"sizeLimit": "2Gi"}},
                              {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    serving = pod["containers"][0]
    assert serving["volumeMounts"] == [{"name": "models", "mountPath": "/models",
                                        "readOnly": True},
                                       {"name": "tmp", "mountPath": "/tmp"}]
    assert env_of(serving)["WATTSERVE_MODEL_PATH"] == "/models"


@pytest.mark.parametrize("scheme", ["hf", "s3"])
def test_fetch_container_is_restricted_when_rendered_not_patched_later(scheme: str) -> None:
    (init,) = model_storage(f"{scheme}://org/m", IMAGE, POLICY, RenderSettings()).init_containers
    assert init["securityContext"] == container_security()


def test_dollar_in_a_source_is_escaped_so_kubernetes_expands_no_var() -> None:
    source = "hf://org/m$(HF_TOKEN)x$$y"
    settings = RenderSettings(hf_token_secret="hf")
    (init,) = model_storage(source, IMAGE, POLICY, settings).init_containers
    arg = init["command"][3]
    assert arg == "hf://org/m$$(HF_TOKEN)x$$$$y"
    assert _kubernetes_expand(arg, {"HF_TOKEN": "secret"}) == source  # what the process gets


def test_dollar_in_the_model_path_env_is_escaped_in_the_serving_container() -> None:
    # The API rejects such a source (pattern); the renderer must not rely on that alone.
    store = model_storage("hf://org/m$(HF_TOKEN)", IMAGE, POLICY, RenderSettings())
    container = serving_container(inputs_for(example_md_doc("smollm2-135m.yaml")), store)
    path = env_of(container)["WATTSERVE_MODEL_PATH"]
    assert _kubernetes_expand(path, {"HF_TOKEN": "secret"}) == "/models/org/m$(HF_TOKEN)"


def _kubernetes_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion): $$ -> $,
    $(NAME) -> its value when defined, anything else kept."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env.get(name, text[i:end + 1]))
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)
