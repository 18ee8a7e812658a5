"""Manifests read as kubectl and the API server read them (JSON with tabs, whole floats
for integers, YAML 1.2 numbers, duplicate keys refused, dotted names, pod toleration
rules), and the CLI's one-line refusals of what a cluster would not hold (two objects of
one name, an empty path, a simulation with bounds that contradict each other)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wattserve.api import (
    SpecError,
    load_yaml_documents,
    parse_documents,
    parse_model_deployment,
    parse_serving_pool,
)
from wattserve.api.manifests import dump_yaml
from wattserve.cli.main import main

from tests.unit.factories import EXAMPLES

POOLS = str(EXAMPLES / "pools.yaml")
SMOL = EXAMPLES / "models" / "smollm2-135m.yaml"


def _smol() -> dict[str, object]:
    return load_yaml_documents(SMOL.read_text())[0]


def test_json_indented_with_tabs_is_read_as_json() -> None:
    text = json.dumps(_smol(), indent="\t")
    assert load_yaml_documents(text)[0] == _smol()


@pytest.mark.parametrize(("text", "value"), [
    ("latencyP95Ms: 3000.0", 3000), ("latencyP95Ms: 3e3", 3000),
])
def test_whole_floats_and_exponents_are_integers_as_the_api_server_takes_them(
        text: str, value: int) -> None:
    doc = _smol()
    raw = yaml.safe_dump(doc).replace("latencyP95Ms: 3000", text)
    assert parse_model_deployment(load_yaml_documents(raw)[0]).spec.slo.latency_p95_ms == value


def test_base_60_is_a_string_and_refused_by_name() -> None:
    raw = yaml.safe_dump(_smol()).replace("latencyP95Ms: 3000", "latencyP95Ms: 50:00")
    with pytest.raises(SpecError, match="latencyP95Ms: must be an integer, got str"):
        parse_model_deployment(load_yaml_documents(raw)[0])


@pytest.mark.parametrize("text", [
    "kind: ModelDeployment\nspec: {objective: cost}\nspec: {objective: energy}\n",
    '{"kind": "ModelDeployment", "kind": "ServingPool"}',
])
def test_duplicate_keys_are_refused_like_kubectl(text: str) -> None:
    with pytest.raises(SpecError, match="duplicate key"):
        load_yaml_documents(text, "dup.yaml")


def test_a_typed_list_is_expanded() -> None:
    text = yaml.safe_dump({"apiVersion": "wattserve.dev/v1alpha1",
                           "kind": "ModelDeploymentList", "items": [_smol(), _smol()]})
    assert len(load_yaml_documents(text)) == 2


def test_a_list_item_that_is_not_an_object_is_refused_by_its_index(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [_smol(), 1, "x"]})
    with pytest.raises(SpecError, match=r"^list.yaml: document 1: items\[1\] must be a "
                                        r"mapping \(a Kubernetes object\), got the number 1$"):
        load_yaml_documents(text, "list.yaml")
    path = tmp_path / "list.yaml"
    path.write_text(text)
    _one_line_exit_2(["plan", "-f", str(path), "--pools", POOLS], capsys, f"{path}: ",
                     "items[1]")


@pytest.mark.parametrize("json_file", [False, True])
def test_an_integer_too_long_to_convert_is_refused_by_file_line_and_key(
        json_file: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _smol()
    doc["spec"]["scaling"] = {"maxReplicas": 123456789}  # type: ignore[index]
    text = json.dumps(doc) if json_file else yaml.safe_dump(doc)
    text = text.replace("123456789", "9" * 5000)  # past int()'s 4300 digits
    line = 1 if json_file else text.splitlines().index(
        next(row for row in text.splitlines() if "maxReplicas" in row)) + 1
    with pytest.raises(SpecError, match=f"^m.yaml: line {line}: maxReplicas: an integer of "
                                        "5000 characters is out of range$"):
        load_yaml_documents(text, "m.yaml")
    path = tmp_path / "m.yaml"
    path.write_text(text)
    needles = (f"{path}: line {line}: maxReplicas: ",)
    _one_line_exit_2(["plan", "-f", str(path), "--pools", POOLS], capsys, *needles)
    _one_line_exit_2(["plan", "-f", str(SMOL), "--pools", str(path)], capsys, *needles)
    _one_line_exit_2(["simulate", "--model", str(path), "--pools", POOLS, "--no-oracle",
                      "--generate", "hours=0.1,rate=0.5"], capsys, *needles)


def test_dotted_names_are_custom_resource_names_and_253_characters_the_most() -> None:
    doc = _smol()
    doc["metadata"] = {"name": "llama-3.1-8b", "namespace": "team-a"}
    assert parse_model_deployment(doc).name == "llama-3.1-8b"
    for meta, field in (({"name": "x" * 254}, "metadata.name"),
                        ({"name": "a..b"}, "metadata.name"),
                        ({"name": "ok", "namespace": "Bad_NS"}, "metadata.namespace"),
                        ({"name": "ok", "namespace": "n" * 64}, "metadata.namespace")):
        doc["metadata"] = meta
        with pytest.raises(SpecError) as err:
            parse_model_deployment(doc)
        assert err.value.path == field


def _pool(tolerations: list[object]) -> dict[str, object]:
    pools = load_yaml_documents(Path(POOLS).read_text())
    doc = dict(pools[0])
    doc["spec"] = dict(doc["spec"], tolerations=tolerations)  # type: ignore[arg-type]
    return doc


def test_tolerations_follow_the_pod_rules() -> None:
    ok = [{"key": "", "operator": "Exists"}, {"operator": "Exists"},
          {"key": "k", "operator": "Equal", "value": ""},
          {"key": "k", "effect": "NoExecute", "tolerationSeconds": 300}]
    pool = parse_serving_pool(_pool(ok))
    assert [t.to_k8s() for t in pool.spec.tolerations][3] == {
        "operator": "Equal", "key": "k", "effect": "NoExecute", "tolerationSeconds": 300}
    for bad, field in (({"key": "", "operator": "Equal"}, "operator"),
                       ({"key": "k", "operator": "Exists", "value": "v"}, "value"),
                       ({"key": "k", "tolerationSeconds": 5}, "tolerationSeconds"),
                       (None, "tolerations[0]")):
        with pytest.raises(SpecError) as err:
            parse_serving_pool(_pool([bad]))
        assert err.value.path.endswith(field), err.value.path


def test_node_selector_and_toleration_labels_follow_the_api_servers_rules() -> None:
    good = {"nvidia.com/gpu.product": "NVIDIA-L4", "kubernetes.io/arch": "amd64", "pool": ""}
    doc = _pool([{"key": "example.com/dedicated", "value": "gpu_a.1"}])
    doc["spec"] = dict(doc["spec"], nodeSelector=good)  # type: ignore[arg-type]
    assert dict(parse_serving_pool(doc).spec.node_selector) == good
    for selector in ({"Bad Key": "x"}, {"/name": "x"}, {"UPPER.example/x": "y"},
                     {"k": "-starts-with-dash"}, {"k": "x" * 64}, {"a" * 64: "v"}):
        doc["spec"] = dict(doc["spec"], nodeSelector=selector)  # type: ignore[arg-type]
        with pytest.raises(SpecError) as err:
            parse_serving_pool(doc)
        assert err.value.path.startswith("spec.nodeSelector."), err.value.path
    for bad, field in (({"key": "not a key", "operator": "Exists"}, "key"),
                       ({"key": "k", "value": "no spaces"}, "value")):
        with pytest.raises(SpecError) as err:
            parse_serving_pool(_pool([bad]))
        assert err.value.path.endswith(field), err.value.path


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str
                     ) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]


def test_plan_refuses_two_objects_of_one_name(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2(["plan", "-f", str(SMOL), "-f", str(SMOL), "--pools", POOLS], capsys,
                     "ModelDeployment 'default/smollm2-135m' is defined twice")
    pools = load_yaml_documents(Path(POOLS).read_text())
    twice = tmp_path / "pools.yaml"
    twice.write_text(yaml.safe_dump_all([pools[0], pools[0]]))
    _one_line_exit_2(["plan", "-f", str(SMOL), "--pools", str(twice)], capsys,
                     f"ServingPool {pools[0]['metadata']['name']!r} is defined twice")


@pytest.mark.parametrize(("drop", "needle"), [
    (("apiVersion",), "document 1: apiVersion not set"),
    (("kind",), "document 1: kind not set"),
    (("apiVersion", "kind"), "document 1: apiVersion and kind not set"),
])
def test_an_object_without_apiversion_or_kind_is_refused_as_kubectl_refuses_it(
        drop: tuple[str, ...], needle: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bare = {k: v for k, v in _smol().items() if k not in drop}
    path = tmp_path / "bare.yaml"
    path.write_text(yaml.safe_dump(bare))
    _one_line_exit_2(["plan", "-f", str(path), "--pools", POOLS], capsys, needle)
    _one_line_exit_2(["simulate", "--model", str(path), "--pools", POOLS, "--no-oracle",
                      "--generate", "hours=0.1,rate=0.5"], capsys, needle)
    pools = tmp_path / "pools.yaml"
    pools.write_text(yaml.safe_dump_all(
        [{k: v for k, v in doc.items() if k not in drop}
         for doc in load_yaml_documents(Path(POOLS).read_text())]))
    _one_line_exit_2(["plan", "-f", str(SMOL), "--pools", str(pools)], capsys, needle)


def test_plan_refuses_an_empty_path_and_reads_json_files_in_a_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2(["plan", "-f", "", "--pools", POOLS], capsys, "an empty path")
    (tmp_path / "smol.json").write_text(json.dumps(_smol()))
    assert main(["plan", "-f", str(tmp_path), "--pools", POOLS, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["modelDeployment"] == "smollm2-135m"


def test_plan_refuses_an_incumbent_without_a_fleet_or_with_endless_replicas(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = tmp_path / "inc.yaml"
    inc.write_text("models: []\n")
    _one_line_exit_2(["plan", "-f", str(SMOL), "--pools", POOLS, "--incumbent", str(inc)],
                     capsys, "--incumbent: re-plans a fleet")
    fleet = [arg for f in sorted((EXAMPLES / "fleet").glob("*.yaml"))[:2] for arg in ("-f", str(f))]
    assert main(["plan", *fleet, "--pools", POOLS,
                 "--no-optimum", "-o", "json"]) in (0, 1)
    before = json.loads(capsys.readouterr().out)
    before["models"][0]["fleet"]["replicas"] = float("inf")
    inc.write_text(yaml.safe_dump(before))
    _one_line_exit_2(["plan", *fleet, "--pools", POOLS,
                      "--no-optimum", "--incumbent", str(inc)], capsys, "models[0]")


def test_plan_refuses_an_incumbent_count_of_the_wrong_kind_by_its_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = [arg for f in sorted((EXAMPLES / "fleet").glob("*.yaml"))[:2] for arg in ("-f", str(f))]
    assert main(["plan", *fleet, "--pools", POOLS, "--no-optimum", "-o", "json"]) in (0, 1)
    before = json.loads(capsys.readouterr().out)
    inc = tmp_path / "inc.json"
    for part, field, value, needle in (
            ("fleet", "replicas", 1.9, "models[0].fleet.replicas: must be an integer"),
            ("fleet", "replicas", True, "models[0].fleet.replicas: must be an integer"),
            ("placement", "tensorParallel", -1, "models[0].placement.tensorParallel: must be >= 0"),
            ("placement", "tensorParallel", 10**18,
             "models[0].placement.tensorParallel: must be <= 8"),
            ("placement", "cpuRequest", "nan", "models[0].placement.cpuRequest: must be a number"),
            ("fleet", "replicas", 123456789, "line 1: replicas: an integer of 5000 characters")):
        bad = json.loads(json.dumps(before))
        bad["models"][0][part][field] = value
        inc.write_text(json.dumps(bad).replace("123456789", "9" * 5000))
        _one_line_exit_2(["plan", *fleet, "--pools", POOLS, "--no-optimum",
                          "--incumbent", str(inc)], capsys, "wattserve plan: --incumbent: ",
                         needle)


@pytest.mark.parametrize(("flags", "needle"), [
    (["--idle-timeout", "-5"], "--idle-timeout must be 30..604800"),
    (["--idle-timeout", "nan"], "--idle-timeout must be 30..604800"),
    (["--min-replicas", "5", "--max-replicas", "2"], "--min-replicas (5) must be <= "),
])
def test_simulate_refuses_contradicting_bounds(flags: list[str], needle: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2(["simulate", "--model", str(SMOL), "--pools", POOLS, "--no-oracle",
                      "--generate", "hours=0.1,rate=0.5", *flags], capsys, needle)


def test_simulate_refuses_a_model_file_with_two_models(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two = tmp_path / "two.yaml"
    other = _smol()
    other["metadata"] = {"name": "other"}
    two.write_text(yaml.safe_dump_all([_smol(), other]))
    _one_line_exit_2(["simulate", "--model", str(two), "--pools", POOLS,
                      "--generate", "hours=0.1,rate=0.5"], capsys,
                     "2 ModelDeployment documents")


def test_control_characters_in_a_name_do_not_reach_the_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _smol()
    doc["spec"]["model"]["name"] = "smol\x1b[2J\nsecond line"  # type: ignore[index]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["plan", "-f", str(path), "--pools", POOLS]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "smol\ufffd[2J\ufffdsecond line" in out


def test_stdin_is_read_once(capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2(["plan", "-f", "-", "--pools", "-"], capsys, "stdin (-) can be read once")


def test_merge_keys_and_date_like_values_are_read_as_go_yaml_reads_them() -> None:
    text = """
base: &shared {cpu: 4, memoryGiB: 8}
node:
  <<: *shared
  memoryGiB: 16
name: 2024-01-01
"""
    [doc] = parse_documents(text, "m.yaml")
    assert doc["node"] == {"cpu": 4, "memoryGiB": 16}  # explicit keys win over merged ones
    assert doc["name"] == "2024-01-01"  # a string, as kubectl keeps it


@pytest.mark.parametrize("value", ["1e3", "0x1f", "0o17", "2024-01-01", "yes", "null", ".5",
                                   "+1", "1_000", "~", "plain"])
def test_what_dump_yaml_writes_reads_back_as_written(value: str) -> None:
    text = dump_yaml({"name": value, "nested": [{"pool": value}]})
    assert parse_documents(text, "out.yaml") == [{"name": value, "nested": [{"pool": value}]}]
    assert yaml.safe_load(text) == {"name": value, "nested": [{"pool": value}]}


def test_plan_yaml_names_that_look_like_numbers_survive_a_round_trip(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _smol()
    doc["metadata"] = {"name": "1e3"}
    path = tmp_path / "m.yaml"
    path.write_text(dump_yaml(doc))  # yaml.safe_dump leaves 1e3 bare: kubectl reads 1000
    assert main(["plan", "-f", str(path), "--pools", POOLS, "-o", "yaml"]) == 0
    out = capsys.readouterr().out
    [read] = parse_documents(out, "plan.yaml")
    assert "1e3" in json.dumps(read) and "1000" not in json.dumps(read)


def test_an_unknown_field_with_control_characters_is_refused_on_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _smol()
    doc["spec"]["bogus\nkey\x1b[31m"] = 1  # type: ignore[index]
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps(doc))
    _one_line_exit_2(["plan", "-f", str(path), "--pools", POOLS], capsys,
                     "spec.bogus\\nkey\\x1b[31m", "unknown field")  # escaped, no ESC


def test_simulate_refuses_a_document_of_an_unknown_kind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = load_yaml_documents(Path(POOLS).read_text())
    docs[0]["kind"] = "ServingPoool"
    pools = tmp_path / "pools.yaml"
    pools.write_text(yaml.safe_dump_all(docs))
    _one_line_exit_2(["simulate", "--model", str(SMOL), "--pools", str(pools),
                      "--generate", "hours=0.1,rate=0.5"], capsys,
                     "document 1: kind", "'ServingPoool'")


def test_a_fractional_seed_is_refused_not_truncated(capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_exit_2(["simulate", "--model", str(SMOL), "--pools", POOLS,
                      "--generate", "hours=0.1,seed=2.5"], capsys, "seed", "2.5")


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write is EPIPE
    proc = subprocess.run([sys.executable, "-m", "wattserve.cli.main", "plan", "-f",
                           str(EXAMPLES / "fleet"), "--pools", POOLS, "-o", "json"],
                          stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141
