"""Fixed-size files (issue 12 item 2): ``--input-size`` and ``--batch`` are checked before
any work with one clear line; once one TFLite variant needed the fixed size, the others go
straight to it and every artifact's console line says why it is fixed-size."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """A stride-2 U-Net (spatial multiple 2) whose conv after UpSampling2D TFLite cannot
    legalize with dynamic H x W."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3), name="image")
    down = layers.Conv2D(8, 3, 2, padding="same", activation="relu")(x)
    h = layers.Concatenate()([layers.UpSampling2D(2)(down), x])
    path = tmp_path_factory.mktemp("unet") / "unet.keras"
    keras.Model(x, layers.Conv2D(3, 3, padding="same", activation="tanh")(h)).save(path)
    return path


@pytest.mark.parametrize(("size", "message"), [
    ("64", "--input-size must be HxW (e.g. 64x64), got '64'"),
    ("33x48", "--input-size 33x48: model 'unet' takes H and W that are multiples of 2"),
])
def test_a_bad_input_size_is_one_line_and_writes_nothing(cli, unet, tmp_path, size, message):
    result = cli("all", "--model", unet, "--out", tmp_path / "o", "--input-size", size)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.*"))


def test_tflite_refuses_batch(cli, unet, tmp_path):
    """TFLite fixed-size files are batch 1 (the edge runner feeds one sample at a time)."""
    result = cli("tflite", "--model", unet, "--out", tmp_path, "--quantize", "fp32", "--batch", "2")
    assert result.exit_code == 2, result.output
    assert "tflite fp32 does not take --batch; it accepts: --input-size" in result.output


def test_later_variants_go_straight_to_the_fixed_size_and_say_why(cli, unet, tmp_path):
    result = cli("tflite", "--model", unet, "--out", tmp_path, "--input-size", "32x48")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "fixed 32x48: dynamic H x W failed" in line]
    assert [line.split()[2] for line in lines] == ["fp32", "fp16", "dynamic"], result.output
    entries = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]
    why = {e["variant"]: e["options"]["fixed_size_reason"] for e in entries}
    assert "op tf.Conv2D is not a TFLite builtin" in why["fp32"] and "skip" not in why["fp32"]
    assert all("(in tflite fp32; later variants skip the attempt)" in why[v] for v in ("fp16", "dynamic")), why
    assert {tuple(e["fixed_size"]) for e in entries} == {(32, 48)}


def test_calibration_resized_to_the_fixed_size_keeps_its_range():
    """0..255 calibration images resized to a fixed size stay 0..255 (they were clipped to
    the zoo's [-1, 1], which calibrated a TF-Hub-style model on a flat grey: PSNR 18 dB)."""
    import dataclasses

    import numpy as np
    from harness.tiny import tiny_spec

    from genimg_export.exporters.tflite import calibration_data

    spec, _ = tiny_spec()
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    spec = dataclasses.replace(spec, calibration_inputs=lambda n, signature: {"x": pixels[:n]})
    (x,) = calibration_data(spec, spec.default_signature, 4, fixed_size=(32, 24)).values()
    assert x.shape == (4, 32, 24, 3) and x.min() >= 0 and x.max() > 200 and x.max() <= 255
