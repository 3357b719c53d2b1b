"""Calibration the user can trust (issue 12 item 6): what int8 was calibrated on is in the
manifest (source, samples used, a hash), too few samples are warned about, and an image
folder is mapped to the range the model expects (``--input-range``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """A .keras model whose image input is in 0..255 (as TF-Hub models take it), and 3 photos."""
    from harness.tiny import build

    root = tmp_path_factory.mktemp("calib")
    build().save(root / "m.keras")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    return root / "m.keras", photos


def test_an_image_folder_is_mapped_to_the_input_range(user_model):
    from genimg_export.zoo import loading, user

    model, photos = user_model
    spec = loading.get_spec(str(model))
    default = user.with_calibration(spec, None, photos).calibration_inputs(10)["x"]
    wide = user.with_calibration(spec, None, photos, (0.0, 255.0)).calibration_inputs(10)["x"]
    assert default.min() >= -1.0 and default.max() <= 1.0
    assert wide.min() >= 0.0 and wide.max() > 200.0
    np.testing.assert_allclose(wide, (default + 1.0) / 2.0 * 255.0, rtol=1e-5, atol=1e-3)


def test_the_manifest_records_source_count_hash_and_range(user_model, cli, tmp_path):
    model, photos = user_model
    runs = {}
    for name, extra in {"a": ["--input-range", "0,255"], "b": ["--input-range", "0,255"], "c": []}.items():
        result = cli("tflite", "--model", model, "--out", tmp_path / name, "--quantize", "int8",
                     "--calibration-dir", photos, *extra)
        assert result.exit_code == 0, result.output
        assert "warning: 3 calibration samples" in result.output and "100+ are advised" in result.output
        (entry,) = json.loads((tmp_path / name / "manifest.json").read_text())["artifacts"]
        runs[name] = entry["options"]
    assert runs["a"]["calibration"] == str(photos)
    assert runs["a"]["calibration_used"] == 3 and runs["a"]["calibration_samples"] == 100
    assert runs["a"]["calibration_input_range"] == [0.0, 255.0] and "calibration_input_range" not in runs["c"]
    assert runs["a"]["calibration_sha256"] == runs["b"]["calibration_sha256"]  # same data, same hash
    assert runs["a"]["calibration_sha256"] != runs["c"]["calibration_sha256"]  # other range, other data


@pytest.mark.parametrize(("args", "message"), [
    (["--input-range", "255,0"], "LOW < HIGH"),
    (["--input-range", "zero,255"], "must be LOW,HIGH"),
])
def test_a_bad_input_range_is_one_line(user_model, cli, tmp_path, args, message):
    model, photos = user_model
    result = cli("tflite", "--model", model, "--out", tmp_path / "o", "--quantize", "int8",
                 "--calibration-dir", photos, *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_input_range_needs_an_image_folder(user_model, cli, tmp_path):
    model, _ = user_model
    np.savez(tmp_path / "c.npz", x=np.zeros((2, 16, 16, 3), np.float32))
    result = cli("tflite", "--model", model, "--out", tmp_path / "o", "--quantize", "int8",
                 "--calibration-npz", tmp_path / "c.npz", "--input-range", "0,255")
    assert result.exit_code == 2 and "--input-range maps the images of --calibration-dir" in result.output
