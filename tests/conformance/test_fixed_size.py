"""Fixed-size conversion (issue 12 item 2): a plain U-Net (UpSampling2D + Concatenate)
gets TFLite files fixed at 64x64; the console must say so and why, ``--input-size``
must choose the size, and parity must say at which size each row ran."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    import keras
    from keras import layers

    root = tmp_path_factory.mktemp("unet")
    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3), name="image")
    down = layers.Conv2D(8, 3, 2, padding="same", activation="relu")(x)
    h = layers.Concatenate()([layers.UpSampling2D(2)(down), x])
    keras.Model(x, layers.Conv2D(3, 3, padding="same", activation="tanh", name="out")(h)).save(root / "unet.keras")
    return root / "unet.keras"


@pytest.fixture(scope="module")
def unet_tflite(unet, cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("unet_out")
    result = cli("tflite", "--model", unet, "--out", out, "--quantize", "fp32")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_fallback_size_is_in_the_manifest(unet_tflite):
    out, _ = unet_tflite
    entries = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert [e.get("fixed_size") for e in entries if e["format"] == "tflite"] == [[64, 64]]


def test_the_console_says_why_a_file_is_fixed_size(unet_tflite):
    _, output = unet_tflite
    line = next(line for line in output.splitlines() if "fixed 64x64" in line)
    assert "dynamic" in line.lower(), line  # e.g. "fixed 64x64: dynamic H x W failed (...)"


def test_parity_says_at_which_size_each_row_ran(unet, unet_tflite, cli, tmp_path):
    out, _ = unet_tflite
    result = cli("parity", "--model", unet, "--out", out, "--backends", "keras,tflite", "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    rows = {r["backend"]: r for r in json.loads((tmp_path / "p.json").read_text())["rows"]}
    assert rows["tflite"]["sizes"] == [[64, 64]] and rows["keras"]["sizes"] == [[16, 16], [16, 24]]
    assert "64x64" in result.output


def test_input_size_chooses_the_fixed_size(unet, cli, tmp_path):
    result = cli("tflite", "--model", unet, "--out", tmp_path, "--quantize", "fp32", "--input-size", "32x48")
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]
    assert [e.get("fixed_size") for e in entries if e["format"] == "tflite"] == [[32, 48]]
