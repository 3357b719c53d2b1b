"""Parity: every zoo model × backend × variant against Keras, and the check shown to fail.

srgan runs in the default suite; the rest of the zoo matrix is marked slow
(each model is exported in every format once, then checked once).
"""

from __future__ import annotations

import functools
import json
import os
import shutil

import numpy as np
import pytest
from harness.zoo_exports import exported
from typer.testing import CliRunner

from genimg_export.artifacts.formats import format_variants
from genimg_export.cli import app
from genimg_export.parity import run_parity
from genimg_export.runners import SERVER_BACKENDS
from genimg_export.zoo import registry

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DEFAULT_MODEL = "srgan"  # the model whose whole matrix runs in the default suite


def _marks(name):
    return [] if name == DEFAULT_MODEL else [pytest.mark.slow]


MATRIX = [
    pytest.param(name, fmt, variant, id=f"{name}-{fmt}-{variant}", marks=_marks(name))
    for name in registry.names()
    for fmt, variant in [("keras", None), *format_variants()]
]


@functools.cache
def parity_of(name: str):
    ex = exported(name)
    return run_parity(name, ex.out, threads=2, keras_model=ex.model)


@pytest.mark.parametrize("name,fmt,variant", MATRIX)
def test_zoo_backend_variant_within_tolerance(name, fmt, variant):
    ex = exported(name)
    outcome = ex.outcomes.get((fmt, variant))
    if outcome is not None and outcome.skipped:
        pytest.skip(f"{name} {fmt}/{variant} not exported: {outcome.skipped}")
    assert outcome is None or outcome.ok, f"export failed: {outcome.error}"
    rows = [r for r in parity_of(name).rows if (r.backend, r.variant) == (fmt, variant)]
    assert rows, f"no parity rows for {fmt}/{variant}"
    for row in rows:
        assert row.shape_ok and row.dtype_ok, row.reason
        assert row.passed, f"{row.signature}/{row.output}: {row.reason}"
        if variant == "fp32" or fmt == "keras":
            assert row.max_abs <= 1e-4


@pytest.mark.parametrize("name", registry.names())
def test_every_model_format_variant_has_a_tolerance(name):
    spec = registry.get(name)
    needed = [*format_variants(), *((b, "fp32") for b in SERVER_BACKENDS)]
    missing = [f"{fmt}/{variant}" for fmt, variant in needed if (fmt, variant) not in spec.tolerances]
    assert not missing, f"{name} has no tolerance for: {', '.join(missing)}"
    loose = [k for k, t in spec.tolerances.items() if _looser_than_house(k, t) and not t.reason]
    assert not loose, f"{name}: tolerances looser than the house values need a reason: {loose}"


def _looser_than_house(key, tol) -> bool:
    from genimg_export.zoo.spec import STANDARD_TOLERANCES

    house = STANDARD_TOLERANCES.get(key)
    if house is None:
        return False
    if house.max_abs is not None and (tol.max_abs is None or tol.max_abs > house.max_abs):
        return True
    return house.min_psnr_db is not None and (tol.min_psnr_db or 0) < house.min_psnr_db


def test_task_metric_reported_next_to_keras():
    task = parity_of(DEFAULT_MODEL).task_metric
    assert task is not None and "ground truth" in task["name"]
    quantized = {(r["backend"], r["variant"]) for r in task["rows"]}
    assert {("tflite", "int8"), ("onnx", "int8"), ("tflite", "fp16")} <= quantized
    for row in task["rows"]:
        assert np.isfinite(row["value"]) and abs(row["delta"]) < 3.0, row


def test_pix2pix_brings_its_restoration_metric(tmp_path):
    """pix2pix's spec names its task metric (zoo.pix2pix.Restoration); parity prints it for a
    reduced-precision export (TFLite fp16 alone, the quickest to write)."""
    from genimg_export.exporters import export_variant
    from genimg_export.exporters.saved_model import SavedModelSource
    from genimg_export.zoo import loading

    spec = registry.get("pix2pix")
    model = loading.load_model(spec)
    with SavedModelSource(spec, model) as source:
        export_variant(spec, model, tmp_path, "tflite", "fp16", source)
    result = CliRunner().invoke(app, ["parity", "--model", "pix2pix", "--out", str(tmp_path), "--backends", "tflite"])
    assert result.exit_code == 0, result.output
    assert "task metric: PSNR (dB) vs clean: held-out astronaut + coffee, 64x64" in result.output
    keras, fp16 = (
        line.split() for line in result.output.splitlines() if line.lstrip().startswith(("keras ", "tflite/fp16"))
    )
    assert float(keras[1]) > 20 and abs(float(fp16[1]) - float(keras[1])) < 0.5, result.output


def _flip_tflite_weights(path):
    """Negate the largest float buffer (a conv kernel) of a .tflite file in place."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(path.read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    sizes = [(model.Buffers(i).DataLength(), i) for i in range(model.BuffersLength())]
    view = model.Buffers(max(sizes)[1]).DataAsNumpy()  # a writable view into ``data``
    floats = view.view(np.float32)
    floats *= -1.0
    path.write_bytes(bytes(data))


def _flip_onnx_weights(path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    largest.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(largest), largest.name))
    onnx.save(model, str(path))


def test_parity_fails_on_flipped_weights_and_names_the_backend(tmp_path):
    ex = exported(DEFAULT_MODEL)
    (tmp_path / "tflite").mkdir()
    (tmp_path / "onnx").mkdir()
    tfl = shutil.copy(ex.out / "tflite/srgan.fp32.tflite", tmp_path / "tflite")
    onx = shutil.copy(ex.out / "onnx/srgan.onnx", tmp_path / "onnx")
    _flip_tflite_weights(tmp_path / "tflite/srgan.fp32.tflite")
    _flip_onnx_weights(tmp_path / "onnx/srgan.onnx")
    assert tfl and onx
    report = tmp_path / "broken.png"
    result = CliRunner().invoke(app, [
        "parity", "--model", DEFAULT_MODEL, "--weights", str(ex.weights), "--out", str(tmp_path),
        "--json", str(tmp_path / "p.json"), "--report", str(report),
    ])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert "parity failed" in last and "tflite/fp32" in last and "onnx/fp32" in last, last
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["passed"] is False
    by_backend = {r["backend"]: r for r in doc["rows"]}
    assert by_backend["keras"]["passed"] is True
    assert not by_backend["tflite"]["passed"] and "max abs" in by_backend["tflite"]["reason"]
    assert not by_backend["onnx"]["passed"]
    assert report.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parity_cli_passes_and_writes_stable_json_and_sheet(tmp_path):
    ex = exported(DEFAULT_MODEL)
    out_json, sheet = tmp_path / "parity.json", tmp_path / "parity.png"
    result = CliRunner().invoke(app, [
        "parity", "--model", DEFAULT_MODEL, "--weights", str(ex.weights), "--out", str(ex.out),
        "--backends", "keras,tflite", "--json", str(out_json), "--report", str(sheet), "--threads", "2",
    ])
    assert result.exit_code == 0, result.output
    assert "all 5 rows pass" in result.output
    doc = json.loads(out_json.read_text())
    assert doc["model"] == "srgan" and doc["passed"] is True
    assert [(r["backend"], r["variant"]) for r in doc["rows"]] == [
        ("keras", None), ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8")]
    keys = ["backend", "variant", "output", "shape_ok", "max_abs", "mean_abs", "psnr_db", "ssim", "passed", "reason"]
    for row in doc["rows"]:
        assert list(row)[: len(keys)] == keys
        assert row["output"] == "hr" and row["shape_ok"] is True and row["reason"] is None
    assert doc["sizes"] == [[16, 16], [16, 24]] and doc["samples"] >= 8
    from PIL import Image

    with Image.open(sheet) as img:
        assert img.format == "PNG" and img.width > 600 and img.height > 600


@pytest.mark.parametrize("args,message", [
    (["--backends", "tfliet"], "did you mean 'tflite'"),
    (["--samples", "3"], "--samples must be at least 8"),
    (["--input-range", "1"], "--input-range must be LOW,HIGH"),
    (["--report", "sheet.jpg"], "--report must name a .png file"),
    (["--samples-npz", "nope.npz"], "no such file: nope.npz"),
])
def test_parity_cli_bad_input_is_one_clear_line(args, message, tmp_path):
    ex = exported(DEFAULT_MODEL)
    result = CliRunner().invoke(app, ["parity", "--model", "srgan", "--weights", str(ex.weights),
                                      "--out", str(ex.out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_parity_cli_missing_artifacts_and_model(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["parity", "--model", "srgan", "--out", str(tmp_path), "--backends", "onnx"])
    assert result.exit_code == 2 and "no onnx artifacts of 'srgan'" in result.output
    result = runner.invoke(app, ["parity", "--model", "srgn", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "did you mean 'srgan'" in result.output
