"""Custom layers as users write them for CycleGAN / Real-ESRGAN style generators,
registered under the package ``conformance`` (not the zoo's), so that a .keras
file using them loads only when this module is imported: what
``--custom-objects tests/conformance/layers.py`` is for."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="conformance")
class ReflectionPad2D(keras.layers.Layer):
    """Reflection padding of H and W (CycleGAN pads before every 3x3/7x7 conv)."""

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        grow = lambda d: None if d is None else d + 2 * self.pad  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="conformance")
class InstanceNorm(keras.layers.Layer):
    """Instance normalisation with a learned scale and offset per channel."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, shape):
        self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(shape[-1],), initializer="zeros", name="beta")

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        var = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
        return (x - mean) * ops.rsqrt(var + self.epsilon) * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="conformance")
class DepthToSpace(keras.layers.Layer):
    """Pixel shuffle, (H, W, C·r²) -> (H·r, W·r, C), as tf.nn.depth_to_space."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        import tensorflow as tf

        return tf.nn.depth_to_space(x, self.factor)

    def compute_output_shape(self, shape):
        r = self.factor
        grow = lambda d: None if d is None else d * r  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3] // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
