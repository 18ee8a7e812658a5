"""Model sources -> volumes, mounts and init containers, per scheme."""

from __future__ import annotations

import pytest
from wattserve.api import SpecError
from wattserve.render import RenderSettings, model_storage, render_deployment

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
