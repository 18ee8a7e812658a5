"""A value set to null (`--set key=null`, or `key: null` in a values file) removes the
chart's default for it: helm's schema check then sees the key absent. Whatever key that is,
the install either renders what the API server takes, or fails with one message naming the
key, never with a template's nil-pointer error or YAML it cannot parse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from wattserve.api.manifests import KubectlLoader

from .helmutil import CHART, EVERYTHING_ON, RenderError, render_text

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def _paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


def _with_null(path: tuple[str, ...]) -> dict[str, Any]:
    values = yaml.safe_load(yaml.safe_dump(EVERYTHING_ON))
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = None
    return values


PATHS = list(_paths(DEFAULTS))


def test_the_values_hold_enough_keys_for_this_test_to_mean_something() -> None:
    assert len(PATHS) > 100


@pytest.mark.parametrize("path", PATHS, ids=".".join)
def test_a_null_value_renders_or_fails_naming_the_key(path: tuple[str, ...]) -> None:
    try:
        text = render_text(_with_null(path))
    except RenderError as exc:
        msg = str(exc)
        assert "nil pointer" not in msg and "YAML parse error" not in msg, msg
        assert path[-1] in msg, msg
        return
    assert "<nil>" not in text and "%!" not in text, f"{'.'.join(path)}: {text[:400]}"
    docs = [d for d in yaml.load_all(text, Loader=KubectlLoader) if d]
    assert docs
