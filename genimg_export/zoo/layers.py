"""Custom layers of the zoo, registered so that .keras files load in safe mode."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="genimg")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling (depth_to_space): (H, W, C·r²) -> (H·r, W·r, C)."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return tf.nn.depth_to_space(x, self.factor)

    def compute_output_shape(self, shape):
        r = self.factor
        h = None if shape[1] is None else shape[1] * r
        w = None if shape[2] is None else shape[2] * r
        return (shape[0], h, w, shape[3] // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="genimg")
class Sampling(keras.layers.Layer):
    """VAE reparameterisation: z = mean + exp(log_var / 2)·eps while training,
    z = mean at inference, so that exported models are deterministic."""

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        mean, log_var = inputs
        if not training:
            return mean
        eps = keras.random.normal(keras.ops.shape(mean), seed=self.generator)
        return mean + keras.ops.exp(0.5 * log_var) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
