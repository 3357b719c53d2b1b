"""Honest parity on user models with several inputs and outputs: verdicts that do not
depend on the --backends order, thresholds per output kind, --tolerance, the report."""

from __future__ import annotations

import json

import pytest

ORDERS = [
    "keras,saved_model,tflite,onnx",
    "onnx,tflite,saved_model,keras",
    "keras,tflite",
    "tflite,onnx",
    "saved_model,tflite,keras",
]


def _verdicts(cli, path, out, backends, tmp_path, *extra):
    result = cli("parity", "--model", path, "--out", out, "--backends", backends, "--json",
                 tmp_path / "p.json", *extra)
    doc = json.loads((tmp_path / "p.json").read_text())
    return result, doc, {(r["backend"], r["variant"], r["output"]): (r["passed"], r["max_abs"]) for r in doc["rows"]}


def test_two_output_verdicts_do_not_depend_on_the_backends_order(exported, cli, tmp_path):
    path, out, _ = exported("two_in_two_out")
    seen = {}
    for order in ORDERS:
        _, doc, rows = _verdicts(cli, path, out, order, tmp_path)
        assert {r["output"] for r in doc["rows"]} == {"restored", "mask"}
        for key, verdict in rows.items():
            seen.setdefault(key, set()).add(verdict)
    unstable = {k: v for k, v in seen.items() if len(v) > 1}
    assert not unstable, f"verdicts moved with --backends order: {unstable}"
    assert all(passed for verdicts in seen.values() for passed, _ in verdicts), seen


def test_every_row_carries_the_threshold_it_was_judged_by(exported, cli, tmp_path):
    path, out, _ = exported("image_and_score")
    result, doc, _ = _verdicts(cli, path, out, "keras,tflite,onnx", tmp_path)
    assert result.exit_code == 0, result.output
    assert doc["reference"] == "keras" and doc["tolerance_overrides"] == {}
    by = {(r["backend"], r["variant"], r["output"]): r for r in doc["rows"]}
    score = by["tflite", "int8", "score"]["threshold"]
    assert score["rule"] == "abs_rel" and score["source"] == "spec" and score["atol"] == pytest.approx(10 ** -1.5)
    image = by["tflite", "int8", "enhanced"]["threshold"]
    assert image["rule"] == "image" and image["min_psnr_db"] == 30.0 and image["range_from"] == "declared by the model"
    assert image["data_range"] == 2.0  # tanh: [-1, 1], read from the model's last activation


def test_tolerance_overrides_apply_and_are_recorded(exported, cli, tmp_path):
    path, out, _ = exported("image_and_score")
    result, doc, _ = _verdicts(cli, path, out, "tflite", tmp_path,
                               "--tolerance", "tflite/int8=psnr:99", "--tolerance", "tflite/fp16=atol:0,rtol:0")
    assert result.exit_code == 1
    assert doc["tolerance_overrides"] == {"tflite/int8": {"min_psnr_db": 99.0},
                                          "tflite/fp16": {"atol": 0.0, "rtol": 0.0}}
    by = {(r["variant"], r["output"]): r for r in doc["rows"]}
    assert not by["int8", "enhanced"]["passed"] and by["int8", "enhanced"]["threshold"]["source"] == "--tolerance"
    assert not by["fp16", "score"]["passed"] and "atol 0 + rtol 0" in by["fp16", "score"]["reason"]
    assert by["fp32", "score"]["passed"] and by["fp32", "score"]["threshold"]["source"] == "spec"


@pytest.mark.parametrize(("value", "message"), [
    ("tflite/int9=psnr:25", "no variant 'tflite/int9' (did you mean 'tflite/int8'?)"),
    ("tflite/int8", "must be BACKEND/VARIANT=KEY:VALUE"),
    ("tflite/int8=snr:25", "'snr:25' is not KEY:VALUE with KEY one of"),
    ("tflite/int8=psnr:high", "'high' is not a number"),
    ("tflite/int8=psnr:-3", "psnr must be a finite number >= 0"),
])
def test_bad_tolerances_are_refused_with_one_line(cli, value, message):
    result = cli("parity", "--model", "dcgan", "--backends", "keras", "--tolerance", value)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_a_savedmodel_reference_is_named_so(exported, cli, tmp_path):
    path, out, _ = exported("image_and_score", "hub")
    result, doc, _ = _verdicts(cli, path, out, "keras,onnx", tmp_path)
    assert doc["reference"] == "saved_model"
    assert "vs SavedModel" in result.output and "Keras" not in result.output


def test_the_report_draws_every_output_failing_ones_first(exported, tmp_path):
    from PIL import Image

    from genimg_export.parity import report, run_parity

    path, out, _ = exported("image_and_score")
    result = run_parity(str(path), out, ["tflite"], tolerances={"tflite/fp16": {"atol": 0.0, "rtol": 0.0}})
    sections = [name for name, _ in report._sections(result)]
    assert sections == ["score", "enhanced"]  # score fails fp16 at a zero tolerance: drawn first
    assert Image.open(report.write_contact_sheet(result, tmp_path / "r.png")).size[1] > 400


def test_an_output_range_declared_on_the_cli_is_used_for_a_savedmodel(exported, cli, tmp_path):
    """A SavedModel declares no output range; the hub export recorded 0..255 (as a user says it
    with export --output-range; without it, PSNR over the reference's spread fails int8:
    tests/test_output_range.py), and a range given to parity wins over the recorded one."""
    path, out, _ = exported("vae_decoder", "hub")
    result, doc, _ = _verdicts(cli, path, out, "tflite", tmp_path)
    assert result.exit_code == 0, result.output
    int8 = next(r for r in doc["rows"] if r["variant"] == "int8")
    assert int8["threshold"]["data_range"] == 255.0 and int8["threshold"]["range_from"] == "recorded at export"
    result, doc, _ = _verdicts(cli, path, out, "tflite", tmp_path, "--output-range", "image=0,1")
    int8 = next(r for r in doc["rows"] if r["variant"] == "int8")
    assert int8["threshold"]["data_range"] == 1.0 and int8["threshold"]["range_from"] == "--output-range"
    assert doc["output_ranges"] == {"image": [0.0, 1.0]}


@pytest.mark.parametrize(("value", "message"), [
    ("nope=0,1", "has no output 'nope'"), ("image=1,0", "LO must be below HI"), ("image=a,b", "--output-range must be"),
])
def test_bad_output_ranges_are_one_line(exported, cli, value, message):
    path, out, _ = exported("vae_decoder", "hub")
    result = cli("parity", "--model", path, "--out", out, "--backends", "keras", "--output-range", value)
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_backend_that_writes_into_its_inputs_cannot_change_later_verdicts(exported, monkeypatch):
    """The plan's inputs are shared by every target and the cached reference: a runner that
    scribbles over the arrays it is handed must not move the rows of the targets after it."""
    from genimg_export.parity import run_parity
    from genimg_export.runners.saved_model import SavedModelRunner

    path, out, _ = exported("two_in_two_out")
    clean = run_parity(str(path), out, ["saved_model", "tflite"])
    real_run = SavedModelRunner.run

    def scribbling_run(self, inputs):
        result = real_run(self, inputs)
        for value in inputs.values():
            value += 0.5  # what an in-place kernel on an aliased buffer would do
        return result

    monkeypatch.setattr(SavedModelRunner, "run", scribbling_run)
    dirty = run_parity(str(path), out, ["saved_model", "tflite"])
    assert [(r.label, r.output, r.passed, r.max_abs) for r in dirty.rows] == [
        (r.label, r.output, r.passed, r.max_abs) for r in clean.rows]
