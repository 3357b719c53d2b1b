"""dcgan: z(100) -> 32x32x1 handwritten digit (transpose convs + BatchNorm, tanh).

Trained adversarially on scikit-learn's digits upscaled to 32x32.
"""

from __future__ import annotations

import numpy as np

from genimg_export.zoo.gan import Z_DIM, AdversarialStep, digit_discriminator, generator_trunk
from genimg_export.zoo.registry import register
from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

Z = TensorSpec("z", "float32", (Z_DIM,), None, "latent vector, standard normal")
IMAGE = TensorSpec("image", "float32", (32, 32, 1), (-1.0, 1.0), "generated digit")


def build():
    import keras
    from keras import layers

    z = keras.Input((Z_DIM,), name="z")
    x = layers.Dense(4 * 4 * 128, use_bias=False)(z)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    return keras.Model(z, generator_trunk(x), name="dcgan")


def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=None):
    return {"z": np.random.default_rng(seed).standard_normal((n, Z_DIM)).astype(np.float32)}


def calibration_inputs(n: int, signature: str = "serving_default"):
    return sample_inputs(n, seed=1234)


class Trainer:
    def __init__(self, model, seed: int, batch: int = 64, lr: float = 2e-4):
        from genimg_export.zoo import data

        self.images, _ = data.digits("train")
        self.adv = AdversarialStep(model, digit_discriminator(), seed, batch, lr)
        self.rng, self.nets, self.optimizers = self.adv.rng, self.adv.nets, self.adv.optimizers
        self.config = {"batch": batch, "z_dim": Z_DIM, "loss": "non-saturating GAN, label smoothing 0.9",
                       "optimizer": f"Adam {lr:g}, beta_1 0.5"}
        self.data_description = "scikit-learn digits (1,500 training images) upscaled 8x8 -> 32x32, in [-1, 1]"

    def sample(self):
        return self.images[self.rng.integers(len(self.images), size=self.adv.batch)]

    def fit(self, real):
        z = self.rng.standard_normal((len(real), Z_DIM)).astype(np.float32)
        return self.adv.run(real, z)

    def step(self):
        return self.fit(self.sample())


def evaluate(model, n: int = 500) -> dict[str, float]:
    from genimg_export.zoo import digit_classifier

    images = model(sample_inputs(n, seed=99)["z"], training=False).numpy()
    return digit_classifier.sample_quality(images)


SPEC = register(
    ModelSpec(
        name="dcgan",
        task="generate",
        description="DCGAN digit generator: z(100) -> 32x32 grayscale digit",
        signatures=(Signature("serving_default", (Z,), (IMAGE,)),),
        build=build,
        sample_inputs=sample_inputs,
        calibration_inputs=calibration_inputs,
        tolerances=tolerances(),
        make_trainer=Trainer,
        evaluate=evaluate,
        default_steps=2500,
        quality_target=("mean_confidence", ">=", 0.85),
    )
)
