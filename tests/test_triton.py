"""The Triton model repository written over an export's ONNX files (``genimg-export triton``).

Each config.pbtxt is parsed with Triton's own ModelConfig protobuf (tritonclient);
names, dtypes and dims are checked against what onnxruntime reads from the copied
file, and batching against the settings TF Serving's batching file is written from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from genimg_serving import config_files
from genimg_serving.configs import ConfigError
from genimg_serving.triton_config import Settings, Tensor, TritonIO, config_text, parse

pytest.importorskip("tritonclient.grpc", reason="Triton's model_config protobuf comes with tritonclient")

ORT_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(int32)": "TYPE_INT32", "tensor(int64)": "TYPE_INT64"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A tiny model exported to ONNX fp32 + int8, then its Triton repository."""
    from harness.tiny import tiny_spec

    from genimg_export.artifacts.formats import FORMATS
    from genimg_export.cli.triton_commands import write_repository
    from genimg_export.exporters import run_all

    spec, model = tiny_spec()
    out = tmp_path_factory.mktemp("triton-export")
    pairs = [("onnx", v.name) for v in FORMATS["onnx"].variants]
    outcomes = run_all(spec, model, out, pairs, calibration_samples=8)
    assert not [o.error for o in outcomes if o.error]
    written = write_repository(spec, out)
    return out, dict(written)


def test_parity_over_v2_checks_every_model_of_the_repository(repo, tmp_path):
    """`parity --backends v2` gets a target per Triton model the export wrote (tiny, tiny_int8),
    each opened under its Triton name and judged with its variant's tolerance; an export without
    a Triton repository gets the default model only."""
    import shutil

    from harness.tiny import tiny_spec

    from genimg_export.parity.run import _open
    from genimg_export.runners.discover import discover

    spec, _ = tiny_spec()
    out, _ = repo
    targets = discover(spec, out, ["v2"], {"v2": "127.0.0.1:1"})
    assert [(t.backend, t.variant) for t in targets] == [("v2", "fp32"), ("v2", "int8")]
    names = [_open(spec, t, None, {}).model_name for t in targets]
    assert names == ["tiny", "tiny_int8"]
    bare = tmp_path / "bare"
    shutil.copytree(out / "onnx", bare / "onnx")
    assert [t.variant for t in discover(spec, bare, ["v2"], {"v2": "127.0.0.1:1"})] == ["fp32"]


def _config(folder: Path):
    return parse((folder / "config.pbtxt").read_text())


def test_one_model_per_onnx_file_with_a_byte_identical_copy(repo):
    out, written = repo
    assert sorted(written) == ["tiny", "tiny_int8"]
    sources = {"tiny": out / "onnx/tiny.onnx", "tiny_int8": out / "onnx/tiny.int8.onnx"}
    for name, folder in written.items():
        assert folder == out / "triton" / name
        assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt"]  # no temporaries left
        assert (folder / "1/model.onnx").read_bytes() == sources[name].read_bytes()


def test_configs_parse_with_tritons_proto_and_match_the_onnx_file(repo):
    import onnxruntime as ort
    from tritonclient.grpc import model_config_pb2 as pb

    _, written = repo
    for name, folder in written.items():
        config = _config(folder)
        session = ort.InferenceSession(str(folder / "1/model.onnx"), providers=["CPUExecutionProvider"])
        assert (config.name, config.backend) == (name, "onnxruntime")
        assert config.max_batch_size == config_files.BATCHING_DEFAULTS["max_batch_size"]
        for declared, actual in [*zip(config.input, session.get_inputs()), *zip(config.output, session.get_outputs())]:
            assert declared.name == actual.name
            assert pb.DataType.Name(declared.data_type) == ORT_TYPES[actual.type]
            assert list(declared.dims) == [d if isinstance(d, int) else -1 for d in actual.shape[1:]]
        assert len(config.input) == len(session.get_inputs()) and len(config.output) == len(session.get_outputs())


def test_batching_threads_warmup_and_policy_follow_the_tf_serving_settings(repo):
    from tritonclient.grpc import model_config_pb2 as pb

    out, written = repo
    tf_serving = config_files.BATCHING_DEFAULTS
    config = _config(written["tiny"])
    assert config.dynamic_batching.max_queue_delay_microseconds == tf_serving["batch_timeout_micros"]
    assert config.dynamic_batching.default_queue_policy.max_queue_size == (
        tf_serving["max_enqueued_batches"] * tf_serving["max_batch_size"])
    (group,) = config.instance_group
    assert (group.count, group.kind) == (tf_serving["num_batch_threads"], pb.ModelInstanceGroup.KIND_CPU)
    assert config.parameters["intra_op_thread_count"].string_value == "1"
    assert config.version_policy.latest.num_versions == 1
    (warmup,) = config.model_warmup
    assert list(warmup.inputs["x"].dims) == [16, 16, 3] and warmup.inputs["x"].zero_data
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["path"] == "onnx/tiny.onnx")
    assert json.loads(config.parameters["genimg_manifest"].string_value) == entry


def test_a_fixed_batch_model_is_not_batched():
    io = TritonIO([Tensor("z", "float32", (1, 8))], [Tensor("img", "float32", (1, 4, 4, 3))])
    config = parse(config_text("fixed", io, {}))
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 8] and list(config.model_warmup[0].inputs["z"].dims) == [1, 8]


def test_refusals_are_one_clear_error():
    with pytest.raises(ConfigError, match="does not parse as Triton's ModelConfig"):
        parse('name: "x"\nbackend: "onnxruntime"\nmax_batch_size: "eight"\n')
    with pytest.raises(ConfigError, match="has no type for dtype complex64"):
        config_text("bad", TritonIO([Tensor("c", "complex64", (None, 2))], []), {})
    with pytest.raises(ConfigError, match="needs concrete dims"):
        config_text("dyn", TritonIO([Tensor("x", "float32", (None, None, 3))], []), {})
    with pytest.raises(ConfigError, match="does not parse"):  # a type Triton does not know is caught by the parse
        parse('name: "x"\ninput { name: "a" data_type: TYPE_FLOAT32 dims: 1 }\n')


def test_settings_reach_the_config():
    io = TritonIO([Tensor("x", "float32", (None, 4))], [Tensor("y", "float32", (None, 4))])
    config = parse(config_text("s", io, {}, Settings(max_batch_size=32, instances=4, num_versions=2)))
    assert config.max_batch_size == 32 and config.instance_group[0].count == 4
    assert config.version_policy.latest.num_versions == 2
    assert np.array_equal(config.input[0].dims, [4])


def test_cli_without_onnx_files_says_what_to_run(tmp_path):
    from genimg_export.cli import app

    result = CliRunner().invoke(app, ["triton", "--model", "dcgan", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "no ONNX file of dcgan" in result.output and "genimg-export onnx --model dcgan" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "triton").exists()


def test_cli_writes_the_repository_and_a_rerun_replaces_it(tmp_path):
    from harness.tiny import build

    from genimg_export.cli import app

    path = tmp_path / "tinyuser.keras"
    build().save(path)
    out = tmp_path / "out"
    exported = CliRunner().invoke(app, ["onnx", "--model", str(path), "--out", str(out), "--quantize", "fp32"])
    assert exported.exit_code == 0, exported.output
    for _ in range(2):
        result = CliRunner().invoke(app, ["triton", "--model", str(path), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "✓ triton  tinyuser" in result.output
        folder = out / "triton" / "tinyuser"
        assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt"]
        config = parse((folder / "config.pbtxt").read_text())
        assert [i.name for i in config.input] == ["x"] and list(config.input[0].dims) == [-1, -1, 3]
        assert (folder / "1/model.onnx").read_bytes() == (out / "onnx/tinyuser.onnx").read_bytes()
