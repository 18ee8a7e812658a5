"""Operator settings from the environment."""

from __future__ import annotations

import pytest
from wattserve.render import SettingsError, settings_from_env
from wattserve.render.settings import DEFAULT_IMAGE_CPU, DEFAULT_IMPORT_PATH


def test_defaults_are_pinned_images_and_the_ray_app() -> None:
    s = settings_from_env({})
    assert s.image_cpu == DEFAULT_IMAGE_CPU and ":" in s.image_cpu.rsplit("/", 1)[1]
    assert s.import_path == DEFAULT_IMPORT_PATH


def test_env_overrides_images_policy_and_import_path() -> None:
    s = settings_from_env({"WATTSERVE_SERVING_IMAGE_GPU": "x/gpu:9",
                           "WATTSERVE_SERVING_IMAGE_CPU_PULL_POLICY": "Never",
                           "WATTSERVE_SERVING_IMPORT_PATH": "a.b:c"})
    assert (s.image_gpu, s.pull_policy_cpu, s.import_path) == ("x/gpu:9", "Never", "a.b:c")


@pytest.mark.parametrize("env", [{"WATTSERVE_SERVING_IMAGE_CPU_PULL_POLICY": "Sometimes"},
                                 {"WATTSERVE_SERVING_IMPORT_PATH": "no-colon"},
                                 {"WATTSERVE_SERVING_MAX_QUEUE": "-1"},
                                 {"WATTSERVE_SERVING_PARALLEL": "-2"},
                                 {"WATTSERVE_SERVING_PARALLEL": "many"}])
def test_bad_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        settings_from_env(env)


def test_parallel_defaults_to_the_serving_default_and_is_read() -> None:
    assert settings_from_env({}).parallel == 0
    assert settings_from_env({"WATTSERVE_SERVING_PARALLEL": "16"}).parallel == 16
