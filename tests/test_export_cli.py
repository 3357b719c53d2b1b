"""The export commands through CliRunner: bad input gets one clear line and a non-zero
exit with nothing half-written; ``info`` prints manifest entries and embedded metadata."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def user_keras(tmp_path_factory):
    from harness.tiny import build

    path = tmp_path_factory.mktemp("user") / "my_filter.keras"
    build().save(path)
    return path


@pytest.fixture(scope="module")
def exported_tflite(user_keras, tmp_path_factory):
    """tflite --quantize all of a user model with no calibration data: int8 is skipped."""
    from typer.testing import CliRunner

    from genimg_export.cli import app

    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(app, ["tflite", "--model", str(user_keras), "--out", str(out)])
    return result, out


def test_unknown_model_suggests_the_nearest(cli, tmp_path):
    result = cli("tflite", "--model", "srgn", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "unknown model 'srgn' (did you mean 'srgan'?)" in result.output
    assert "Traceback" not in result.output


def test_unwritable_out_is_refused_before_any_work(cli, tmp_path, user_keras):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("all", "--model", user_keras, "--out", blocker / "out")
    assert result.exit_code == 2
    assert f"cannot create output directory {blocker / 'out'}" in result.output


@pytest.mark.parametrize("command", ["tflite", "onnx"])
def test_int8_of_a_user_model_needs_calibration_data(cli, tmp_path, user_keras, command):
    result = cli(command, "--model", user_keras, "--out", tmp_path, "--quantize", "int8")
    assert result.exit_code == 2
    assert "int8 needs calibration data" in result.output
    assert "--calibration-npz" in result.output and "--calibration-dir" in result.output
    assert not list(tmp_path.rglob("*.tflite")) and not list(tmp_path.rglob("*.onnx"))


def test_calibration_npz_with_wrong_keys_names_the_inputs(cli, tmp_path, user_keras):
    npz = tmp_path / "calib.npz"
    np.savez(npz, image=np.zeros((4, 8, 8, 3), np.float32))
    result = cli("onnx", "--model", user_keras, "--out", tmp_path / "o", "--quantize", "int8",
                 "--calibration-npz", npz)
    assert result.exit_code == 2
    assert "has keys ['image'] but the model's inputs are ['x']" in result.output
    assert "np.savez('calib.npz', x=" in result.output


def test_option_ranges_are_checked(cli, tmp_path, user_keras):
    result = cli("onnx", "--model", user_keras, "--out", tmp_path, "--opset", "12")
    assert result.exit_code == 2 and "--opset" in result.output
    result = cli("tflite", "--model", user_keras, "--out", tmp_path, "--quantize", "int4")
    assert result.exit_code == 2 and "int4" in result.output


def test_existing_version_is_refused(cli, tmp_path, user_keras):
    first = cli("saved-model", "--model", user_keras, "--out", tmp_path, "--version", "3")
    assert first.exit_code == 0, first.output
    assert "✓ saved_model fp32" in first.output and str(tmp_path / "serving/my_filter/3") in first.output
    again = cli("saved-model", "--model", user_keras, "--out", tmp_path, "--version", "3")
    assert again.exit_code == 3
    assert "version 3 of 'my_filter' already exists" in again.output and "--version 4" in again.output
    assert sorted(p.name for p in (tmp_path / "serving/my_filter").iterdir()) == ["3"]


def test_tflite_all_skips_int8_without_calibration_and_logs_each_artifact(exported_tflite):
    result, out = exported_tflite
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for variant in ("fp32", "fp16", "dynamic"):
        line = next(line for line in lines if line.startswith(f"✓ tflite      {variant}"))
        assert f"my_filter.{variant}.tflite" in line and line.endswith(" s") and "KB" in line
    assert any(line.startswith("- tflite      int8    skipped: no calibration data") for line in lines)
    assert sorted(p.name for p in (out / "tflite").iterdir()) == [
        "my_filter.dynamic.tflite", "my_filter.fp16.tflite", "my_filter.fp32.tflite"]


def test_info_prints_the_manifest_entry(cli, exported_tflite):
    _, out = exported_tflite
    result = cli("info", out / "tflite" / "my_filter.fp16.tflite")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output.split("\n", 1)[1])
    assert entry["variant"] == "fp16" and entry["path"] == "tflite/my_filter.fp16.tflite"
    assert entry["signatures"]["serving_default"]["inputs"][0]["name"] == "x"


def test_info_reads_embedded_metadata_of_a_moved_file(cli, exported_tflite, tmp_path):
    _, out = exported_tflite
    moved = tmp_path / "model.tflite"
    shutil.copy(out / "tflite" / "my_filter.fp32.tflite", moved)
    result = cli("info", moved)
    assert result.exit_code == 0, result.output
    assert "embedded metadata" in result.output
    meta = json.loads(result.output.split("\n", 1)[1])
    assert meta["model"] == "my_filter" and meta["variant"] == "fp32" and meta["format"] == "tflite"


def test_info_warns_when_a_file_changed_since_export(cli, exported_tflite):
    _, out = exported_tflite
    path = out / "tflite" / "my_filter.dynamic.tflite"
    path.write_bytes(path.read_bytes() + b"\0")
    result = cli("info", path)
    assert result.exit_code == 0 and "changed since export" in result.output


def test_info_on_other_files_is_a_clear_error(cli, tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    result = cli("info", stray)
    assert result.exit_code == 2 and "no manifest.json entry" in result.output
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a model")
    result = cli("info", bad)
    assert result.exit_code == 2 and "not a TFLite model" in result.output
    result = cli("info", tmp_path / "missing.onnx")
    assert result.exit_code == 2 and "no such file" in result.output


def test_int8_io_gives_int8_tensors_and_records_the_choice(cli, tmp_path, user_keras):
    from ai_edge_litert.interpreter import Interpreter
    from harness.artifact_checks import check_artifact

    from genimg_export.artifacts import manifest
    from genimg_export.zoo import user

    npz = tmp_path / "calib.npz"
    np.savez(npz, x=np.random.default_rng(0).uniform(-1, 1, (100, 8, 8, 3)).astype(np.float32))
    out = tmp_path / "out"
    result = cli("tflite", "--model", user_keras, "--out", out, "--quantize", "int8", "--int8-io",
                 "--calibration-npz", npz)
    assert result.exit_code == 0, result.output
    (entry,) = manifest.load(out)
    assert entry.options["int8_io"] is True and entry.options["calibration"] == str(npz)
    check_artifact(user.spec_from_path(user_keras), entry, out)  # int8 input/output dtypes
    runner = Interpreter(model_path=str(out / entry.path)).get_signature_runner("serving_default")
    scale, zero = runner.get_input_details()["x"]["quantization"]
    assert scale > 0 and runner(x=np.full((1, 8, 8, 3), zero, np.int8))["y"].dtype == np.int8
