"""Tiny .tflite files for the edge tests, converted with real tf.lite.

The tests may use TensorFlow to *make* models; the genimg_edge package itself
never imports it (test_no_tensorflow.py checks that).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _convert(functions, module, int8_calibration=None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, module)
    if int8_calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x] for x in int8_calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def conv_model(int8: bool = False) -> bytes:
    """x (N, H, W, 3) in [-1, 1] -> y = tanh(conv3x3(x)), dynamic H and W."""
    import tensorflow as tf

    module = tf.Module()
    rng = np.random.default_rng(0)
    module.w = tf.Variable(rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32))
    shape = [1, 16, 16, 3] if int8 else [None, None, None, 3]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    def serving_default(x):
        return {"y": tf.tanh(tf.nn.conv2d(x, module.w, 1, "SAME"))}

    module.serving_default = serving_default
    calib = [rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32) for _ in range(32)] if int8 else None
    return _convert([serving_default.get_concrete_function()], module, calib)


@pytest.fixture(scope="session")
def conv_tflite(tmp_path_factory) -> bytes:
    return conv_model()
