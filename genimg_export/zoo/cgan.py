"""cgan: (z(100), label 0-9) -> 32x32x1 digit of that class (conditional DCGAN).

The label enters the generator through an embedding added to the projected
latent, and the discriminator as an extra image channel.
"""

from __future__ import annotations

import numpy as np

from genimg_export.zoo.gan import Z_DIM, AdversarialStep, digit_discriminator, generator_trunk
from genimg_export.zoo.registry import register
from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

Z = TensorSpec("z", "float32", (Z_DIM,), None, "latent vector, standard normal")
LABEL = TensorSpec("label", "int32", (), (0, 9), "digit class 0-9")
IMAGE = TensorSpec("image", "float32", (32, 32, 1), (-1.0, 1.0), "generated digit of that class")


def build():
    import keras
    from keras import layers

    z = keras.Input((Z_DIM,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    x = layers.Dense(4 * 4 * 128, use_bias=False)(z)
    x = layers.Add()([x, layers.Embedding(10, 4 * 4 * 128)(label)])
    x = layers.ReLU()(layers.BatchNormalization()(x))
    return keras.Model([z, label], generator_trunk(x), name="cgan")


def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=None):
    rng = np.random.default_rng(seed)
    return {
        "z": rng.standard_normal((n, Z_DIM)).astype(np.float32),
        "label": (np.arange(n) % 10).astype(np.int32),
    }


def calibration_inputs(n: int, signature: str = "serving_default"):
    return sample_inputs(n, seed=1234)


class Trainer:
    def __init__(self, model, seed: int, batch: int = 64, lr: float = 2e-4, classes: int = 10):
        from genimg_export.zoo import data

        self.images, self.labels = data.digits("train")
        self.classes = classes  # a user's folder may hold fewer than 10 classes
        self.adv = AdversarialStep(model, digit_discriminator(conditional=True), seed, batch, lr)
        self.rng, self.nets, self.optimizers = self.adv.rng, self.adv.nets, self.adv.optimizers
        self.config = {"batch": batch, "z_dim": Z_DIM, "loss": "non-saturating conditional GAN",
                       "optimizer": f"Adam {lr:g}, beta_1 0.5"}
        self.data_description = "scikit-learn digits with labels (1,500 training images) upscaled to 32x32"

    def sample(self):
        idx = self.rng.integers(len(self.images), size=self.adv.batch)
        return self.images[idx], self.labels[idx]

    def fit(self, batch):
        """One step on (images, int labels)."""
        images, labels = batch
        b = len(images)
        z = self.rng.standard_normal((b, Z_DIM)).astype(np.float32)
        fake_labels = self.rng.integers(self.classes, size=b).astype(np.int32)
        return self.adv.run(images, [z, fake_labels], np.asarray(labels, np.int32), fake_labels)

    def step(self):
        return self.fit(self.sample())


def evaluate(model, n: int = 500) -> dict[str, float]:
    from genimg_export.zoo import digit_classifier

    inputs = sample_inputs(n, seed=99)
    images = model([inputs["z"], inputs["label"]], training=False).numpy()
    return digit_classifier.sample_quality(images, labels=inputs["label"])


SPEC = register(
    ModelSpec(
        name="cgan",
        task="generate",
        description="conditional GAN: (z(100), label 0-9) -> 32x32 digit of that class",
        signatures=(Signature("serving_default", (Z, LABEL), (IMAGE,)),),
        build=build,
        sample_inputs=sample_inputs,
        calibration_inputs=calibration_inputs,
        tolerances=tolerances(),
        make_trainer=Trainer,
        evaluate=evaluate,
        default_steps=2500,
        quality_target=("class_accuracy", ">=", 0.85),
    )
)
