"""A tiny fully convolutional model and its ModelSpec, for tests that need one fast."""

from __future__ import annotations

import numpy as np

from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

X = TensorSpec("x", "float32", (None, None, 3), (-1.0, 1.0), "image")
Y = TensorSpec("y", "float32", (None, None, 3), (-1.0, 1.0), "image")


def build():
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3), name="x")
    h = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(3, 3, padding="same", activation="tanh", name="y")(h)
    return keras.Model(x, y, name="tiny")


def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=(16, 16)):
    return {"x": np.random.default_rng(seed).uniform(-1, 1, (n, *size, 3)).astype(np.float32)}


def calibration_inputs(n: int, signature: str = "serving_default"):
    return sample_inputs(n, seed=1234)


def tiny_spec(name: str = "tiny"):
    """(spec, untrained Keras model) of a 2-conv image-to-image model with dynamic H x W."""
    spec = ModelSpec(
        name=name, task="image-to-image", description="two convolutions (test model)",
        signatures=(Signature("serving_default", (X,), (Y,)),), build=build,
        sample_inputs=sample_inputs, calibration_inputs=calibration_inputs,
        tolerances=tolerances(), canonical_size=(16, 16),
    )
    return spec, build()
