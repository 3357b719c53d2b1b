"""Tiny .tflite files for the edge tests, converted with real tf.lite.

The tests may use TensorFlow to *make* models; the genimg_edge package itself
never imports it (test_no_tensorflow.py checks that).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CALIBRATION = [np.random.default_rng(i).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32) for i in range(64)]


def _convert(converter, int8: bool = False) -> bytes:
    import tensorflow as tf

    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x] for x in CALIBRATION)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def conv_model(int8: bool = False, channels: int = 3) -> bytes:
    """x (N, H, W, C) in [-1, 1] -> y (N, 2H, 2W, 3) in [-1, 1]: conv, depth_to_space(2), conv.

    Receptive field: 1.5 input pixels each side, so tiles with overlap >= 2 are exact.
    A fixed 1x16x16 shape and int8 I/O with ``int8=True``.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w1 = tf.Variable(rng.normal(0, 0.3, (3, 3, channels, 12)).astype(np.float32))
    module.w2 = tf.Variable(rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32))
    shape = [1, 16, 16, channels] if int8 else [None, None, None, channels]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    def serving_default(x):
        h = tf.nn.depth_to_space(tf.tanh(tf.nn.conv2d(x, module.w1, 1, "SAME")), 2)
        return {"y": tf.tanh(tf.nn.conv2d(h, module.w2, 1, "SAME"))}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving_default.get_concrete_function()], module)
    return _convert(converter, int8)


def generator_model(saved_dir: Path) -> bytes:
    """Two signatures like the zoo's vae/cgan: serving_default (z (4,), label int32 ()) ->
    image (8, 8, 1) in [-1, 1]; encode: image (8, 8, 1) -> z_mean (4,)."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    module = tf.Module()
    module.dec = tf.Variable(rng.normal(0, 0.5, (4, 64)).astype(np.float32))
    module.emb = tf.Variable(rng.normal(0, 0.5, (10, 64)).astype(np.float32))
    module.enc = tf.Variable(rng.normal(0, 0.5, (64, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, "z"), tf.TensorSpec([None], tf.int32, "label")])
    def decode(z, label):
        h = tf.matmul(z, module.dec) + tf.gather(module.emb, label)
        return {"image": tf.reshape(tf.tanh(h), [-1, 8, 8, 1])}

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, "image")])
    def encode(image):
        return {"z_mean": tf.matmul(tf.reshape(image, [-1, 64]), module.enc)}

    tf.saved_model.save(module, str(saved_dir), signatures={"serving_default": decode, "encode": encode})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir), signature_keys=["serving_default", "encode"])
    return _convert(converter)


def multi_model() -> bytes:
    """Two inputs, three outputs, like a class-conditional restorer that also scores:
    image (H, W, 3) in [-1, 1] + class_vector (10,) -> restored (H, W, 3) in [-1, 1],
    mask (H, W, 1) in [0, 1], score (1,)."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    module = tf.Module()
    module.w = tf.Variable(rng.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float32))
    module.c = tf.Variable(rng.normal(0, 0.3, (10, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, "image"),
                                  tf.TensorSpec([None, 10], tf.float32, "class_vector")])
    def serving_default(image, class_vector):
        h = tf.nn.conv2d(image, module.w, 1, "SAME") + tf.matmul(class_vector, module.c)[:, None, None, :]
        return {"restored": tf.tanh(h[..., :3]), "mask": tf.sigmoid(h[..., 3:]),
                "score": tf.sigmoid(tf.reduce_mean(h, axis=[1, 2, 3]))[:, None]}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving_default.get_concrete_function()], module)
    return _convert(converter)


def tensor(name, shape, value_range=None, dtype="float32"):
    return {"name": name, "dtype": dtype, "shape": [None, *shape], "value_range": value_range, "description": ""}


CONV_META = {
    "model": "toyconv",
    "variant": "fp32",
    "format": "tflite",
    "signatures": {
        "serving_default": {
            "inputs": [tensor("x", (None, None, 3), [-1, 1])],
            "outputs": [tensor("y", (None, None, 3), [-1, 1])],
        }
    },
    "value_range": [-1.0, 1.0],
    "preprocessing": "float32 NHWC in [-1, 1]",
    "scale": 2,
    "spatial_multiple": 1,
    "fixed_size": None,
}
GENERATOR_META = {
    "model": "toygen",
    "variant": "fp32",
    "format": "tflite",
    "signatures": {
        "serving_default": {
            "inputs": [tensor("z", (4,)), tensor("label", (), [0, 9], "int32")],
            "outputs": [tensor("image", (8, 8, 1), [-1, 1])],
        },
        "encode": {"inputs": [tensor("image", (8, 8, 1), [-1, 1])], "outputs": [tensor("z_mean", (4,))]},
    },
    "value_range": [-1.0, 1.0],
    "preprocessing": "float32 NHWC in [-1, 1]",
    "scale": 1,
    "spatial_multiple": 1,
    "fixed_size": None,
}


MULTI_META = {
    "model": "toymulti",
    "variant": "fp32",
    "format": "tflite",
    "signatures": {
        "serving_default": {
            "inputs": [tensor("image", (None, None, 3), [-1, 1]), tensor("class_vector", (10,))],
            "outputs": [tensor("restored", (None, None, 3), [-1, 1]), tensor("mask", (None, None, 1), [0, 1]),
                        tensor("score", (1,))],
        }
    },
    "value_range": None,
    "preprocessing": "float32 NHWC",
    "scale": 1,
    "spatial_multiple": 1,
    "fixed_size": None,
}


@pytest.fixture(scope="session")
def multi_meta() -> dict:
    """The metadata of the two-input, three-output toy model (a fixture: ``from conftest import``
    is ambiguous when the three test trees run in one pytest process)."""
    return json.loads(json.dumps(MULTI_META))


@pytest.fixture(scope="session")
def conv_tflite() -> bytes:
    """The dynamic-shape conv model, no metadata."""
    return conv_model()


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory, conv_tflite) -> dict[str, Path]:
    """Paths of every toy .tflite: conv (+metadata), conv_raw (none), conv_int8 (int8 I/O,
    fixed 16x16), conv4 (4-channel input), gen (two signatures, label input), multi (two
    inputs, three outputs; the mask's range declared, as the exporter does for sigmoid)."""
    from genimg_edge.metadata import embed_metadata

    root = tmp_path_factory.mktemp("toy_models")
    int8_meta = {**CONV_META, "variant": "int8", "fixed_size": [16, 16]}
    files = {
        "conv": embed_metadata(conv_tflite, CONV_META),
        "conv_raw": conv_tflite,
        "conv_int8": embed_metadata(conv_model(int8=True), int8_meta),
        "conv4": embed_metadata(conv_model(channels=4), CONV_META),
        "gen": embed_metadata(generator_model(root / "gen_saved_model"), GENERATOR_META),
        "multi": embed_metadata(multi_model(), MULTI_META),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths
