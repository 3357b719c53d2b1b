"""Which ops of a .tflite file XNNPACK does not take (issue 13 item 1), on real tiny files:
a transpose conv whose output shape is computed at run time (dynamic H x W) stays on LiteRT's
kernels with the shape ops feeding it; the same model at a fixed size is delegated whole."""

from __future__ import annotations

import pytest


def _tflite(path, shape):
    """conv 3->8 + ReLU, then a stride-2 transpose conv 8->3 whose output shape is read from the
    input at run time (as Keras builds it) when ``shape`` has unknown dims."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(0, 0.2, (3, 3, 3, 8)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.2, (3, 3, 3, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def fn(x):
        h = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        n, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        return tf.nn.conv2d_transpose(h, w2, tf.stack([n, 2 * height, 2 * width, 3]), 2, "SAME")

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("xnnpack")
    return _tflite(root / "dynamic.tflite", [None, None, None, 3]), _tflite(root / "fixed.tflite", [1, 8, 8, 3])


def test_a_run_time_shaped_transpose_conv_is_not_delegated(files):
    from genimg_export.bench.xnnpack import describe, undelegated

    missing = undelegated(files[0])
    assert missing == {"TRANSPOSE_CONV": 1, "SHAPE (int32)": 1, "STRIDED_SLICE (int32)": 3, "MUL (int32)": 2,
                       "PACK (int32)": 1}  # the plain conv is taken
    assert describe(missing) == "not delegated to XNNPACK: TRANSPOSE_CONV x1 (+ 7 int32 shape ops)"


def test_at_a_fixed_size_every_op_is_delegated(files):
    from genimg_export.bench.xnnpack import describe, undelegated

    assert undelegated(files[1]) == {}
    assert describe(undelegated(files[1])) == "every op delegated to XNNPACK"


def test_bench_notes_name_only_the_tflite_files_with_undelegated_ops(files, tmp_path):
    from genimg_export.artifacts.target import Target
    from genimg_export.bench.xnnpack import notes

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    targets = [Target(backend, variant, "serving_default", path) for backend, variant, path in (
        ("tflite", "fp32", files[0]), ("tflite", "int8", files[1]), ("onnx", "fp32", files[0]),
        ("tflite", "fp16", broken))]
    assert notes(targets) == ["tflite/fp32: not delegated to XNNPACK: TRANSPOSE_CONV x1 (+ 7 int32 shape ops)"]
