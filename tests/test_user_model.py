"""A user's own model: a .keras file built here with layers the zoo does not use
(separable and depthwise convs, swish, max pooling, multiplicative gating) exports to
every format with ``genimg-export all``; a SavedModel directory becomes a spec too."""

from __future__ import annotations

import numpy as np
import pytest
from harness.artifact_checks import check_artifact

from genimg_export.artifacts import manifest
from genimg_export.artifacts.formats import format_variants
from genimg_export.errors import InvalidInputError
from genimg_export.zoo import user


def build_gated_filter():
    """(N, H, W, 3) -> (N, H, W, 3); H and W must be even (one 2x pool and upsample)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    photo = keras.Input((None, None, 3), name="photo")
    x = layers.SeparableConv2D(8, 3, padding="same", activation="swish")(photo)
    gate = layers.Conv2D(8, 1, activation="sigmoid")(photo)
    x = layers.Multiply()([x, gate])
    x = layers.DepthwiseConv2D(3, padding="same", activation="elu")(layers.MaxPooling2D(2)(x))
    x = layers.UpSampling2D(2)(x)
    restored = layers.Conv2D(3, 3, padding="same", activation="tanh", name="restored")(x)
    return keras.Model(photo, restored, name="gated_filter")


@pytest.fixture(scope="module")
def user_all(tmp_path_factory):
    from typer.testing import CliRunner

    from genimg_export.cli import app

    root = tmp_path_factory.mktemp("user")
    path = root / "gated_filter.keras"
    build_gated_filter().save(path)
    npz = root / "calib.npz"
    np.savez(npz, photo=np.random.default_rng(0).uniform(-1, 1, (100, 16, 16, 3)).astype(np.float32))
    out = root / "out"
    result = CliRunner().invoke(app, ["all", "--model", str(path), "--out", str(out), "--calibration-npz", str(npz)])
    return path, out, result


def test_spec_is_read_from_the_model(user_all):
    path, _, _ = user_all
    spec = user.spec_from_path(path)
    assert spec.name == "gated_filter" and spec.source == path
    (sig,) = spec.signatures
    assert [(t.name, t.dtype, t.shape) for t in sig.inputs] == [("photo", "float32", (None, None, 3))]
    assert [(t.name, t.shape) for t in sig.outputs] == [("restored", (None, None, 3))]
    assert spec.dynamic_spatial and spec.spatial_multiple == 2 and spec.scale == 1
    assert spec.calibration_inputs is None and spec.tolerances[("tflite", "int8")].min_psnr_db


def test_user_model_exports_to_every_format_and_variant(user_all):
    path, out, result = user_all
    assert result.exit_code == 0, result.output
    table = result.output.split("path / reason", 1)[1]
    spec = user.spec_from_path(path)
    entries = manifest.load(out)
    for fmt, variant in format_variants():
        assert f"✓ {fmt:<12}{variant:<9}" in table, f"{fmt}/{variant} missing from the table"
        found = [e for e in entries if (e.format, e.variant) == (fmt, variant)]
        assert found, f"no manifest entry for {fmt}/{variant}"
        for artifact in found:
            assert artifact.source_sha256 == spec.extra["source_sha256"]
            check_artifact(spec, artifact, out)
    int8 = [e for e in entries if e.variant == "int8"]
    assert all(e.options["calibration"].endswith("calib.npz") for e in int8)
    assert "7/7 exported" in result.output


def test_all_prints_each_artifact_once(user_all):
    """`all` prints its table, not a line per artifact before it as well (issue 16)."""
    _, out, result = user_all
    for entry in manifest.load(out):
        assert result.stdout.count(entry.path) == 1, (entry.path, result.stdout)


def test_a_savedmodel_directory_is_a_user_model_too(user_all, tmp_path):
    from genimg_export.exporters import run_all

    _, out, _ = user_all
    version_dir = out / "serving" / "gated_filter" / "1"
    spec = user.spec_from_path(version_dir)
    assert spec.name == "gated_filter"
    assert [s.name for s in spec.signatures] == ["serving_default"]
    assert [t.name for t in spec.default_signature.inputs] == ["photo"]
    assert spec.spatial_multiple == 2
    pairs = [("saved_model", "fp32"), ("onnx", "fp32")]
    outcomes = run_all(spec, spec.extra["model"], tmp_path, pairs=pairs)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for o in outcomes:
        for artifact in o.artifacts:
            check_artifact(spec, artifact, tmp_path)


def test_calibration_from_a_folder_of_images(user_all, tmp_path):
    from genimg_edge.images import save_image

    path, _, _ = user_all
    for i in range(3):
        save_image(tmp_path / f"{i}.png", np.random.default_rng(i).uniform(-1, 1, (20 + i, 30, 3)))
    spec = user.with_calibration(user.spec_from_path(path), directory=tmp_path)
    data = spec.calibration_inputs(100)
    assert data["photo"].shape == (3, *spec.canonical_size, 3) and data["photo"].dtype == np.float32


def test_bad_user_model_paths_are_clear(tmp_path):
    with pytest.raises(InvalidInputError, match="not a SavedModel"):
        user.spec_from_path(tmp_path)
    (tmp_path / "model.h5").write_bytes(b"\x89HDF")
    with pytest.raises(InvalidInputError, match="is not a .keras file"):
        user.spec_from_path(tmp_path / "model.h5")


def test_an_op_a_format_cannot_express_is_named_and_nothing_is_left(cli, tmp_path):
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="test_user_model")
    class RunningProduct(keras.layers.Layer):
        def call(self, x):
            return tf.math.cumprod(x, axis=-1)  # TFLite has no builtin; tf2onnx fails on it

    photo = keras.Input((None, None, 3), name="photo")
    path = tmp_path / "odd.keras"
    keras.Model(photo, keras.layers.Activation("tanh", name="out")(RunningProduct()(photo))).save(path)
    out = tmp_path / "out"
    result = cli("tflite", "--model", path, "--out", out, "--quantize", "fp32")
    assert result.exit_code == 3
    assert "✗ tflite      fp32" in result.output
    assert "op tf.Cumprod is not a TFLite builtin" in result.output and "running_product" in result.output
    result = cli("onnx", "--model", path, "--out", out, "--quantize", "none")
    assert result.exit_code == 3 and "Cumprod" in result.output and "Traceback" not in result.output
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix in (".tflite", ".onnx")]
    assert not (out / "manifest.json").exists()
