"""vae: convolutional variational autoencoder of 32x32 digits.

Two signatures: ``serving_default`` decodes z(16) -> image (the generator),
``encode`` maps an image to (z_mean, z_log_var). The .keras file holds the
whole VAE with nested ``encoder`` and ``decoder`` models.
"""

from __future__ import annotations

import numpy as np

from genimg_export.zoo.registry import register
from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

LATENT = 16
IMAGE = TensorSpec("image", "float32", (32, 32, 1), (-1.0, 1.0), "digit image")
Z = TensorSpec("z", "float32", (LATENT,), None, "latent vector, standard normal")
Z_MEAN = TensorSpec("z_mean", "float32", (LATENT,), None, "posterior mean")
Z_LOG_VAR = TensorSpec("z_log_var", "float32", (LATENT,), None, "posterior log-variance")
RECON_SIGMA = 0.2  # Gaussian decoder noise (in [-1, 1] units) weighing the reconstruction


def build():
    import keras
    from keras import layers

    from genimg_export.zoo.layers import Sampling

    image = keras.Input((32, 32, 1), name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(image)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Dense(128, activation="relu")(layers.Flatten()(x))
    encoder = keras.Model(
        image, [layers.Dense(LATENT, name="z_mean")(x), layers.Dense(LATENT, name="z_log_var")(x)], name="encoder"
    )
    z = keras.Input((LATENT,), name="z")
    y = layers.Reshape((8, 8, 64))(layers.Dense(8 * 8 * 64, activation="relu")(z))
    y = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(y)
    y = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(y)
    decoder = keras.Model(z, layers.Conv2D(1, 3, padding="same", activation="tanh", name="image")(y), name="decoder")

    vae_in = keras.Input((32, 32, 1), name="image")
    mean, log_var = encoder(vae_in)
    return keras.Model(vae_in, decoder(Sampling(name="sampling")([mean, log_var])), name="vae")


def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=None):
    rng = np.random.default_rng(seed)
    if signature == "encode":
        from genimg_export.zoo import data

        images, _ = data.digits("test")
        return {"image": images[rng.integers(len(images), size=n)]}
    return {"z": rng.standard_normal((n, LATENT)).astype(np.float32)}


def calibration_inputs(n: int, signature: str = "serving_default"):
    if signature == "encode":
        from genimg_export.zoo import data

        images, _ = data.digits("train")
        return {"image": images[np.arange(n) % len(images)]}
    return sample_inputs(n, seed=1234)


class Trainer:
    """ELBO: Gaussian reconstruction (sigma 0.2) + KL to N(0, I), Adam 1e-3."""

    def __init__(self, model, seed: int, batch: int = 64, lr: float = 1e-3):
        import keras
        import tensorflow as tf

        from genimg_export.zoo import data
        from genimg_export.zoo.distribute import per_replica, replicated

        self.images, _ = data.digits("train")
        self.rng = np.random.default_rng(seed)
        self.batch = batch
        optimizer = keras.optimizers.Adam(lr)
        self.nets, self.optimizers = {"vae": model}, [(optimizer, model.trainable_variables)]
        self.config = {"latent": LATENT, "batch": batch, "recon_sigma": RECON_SIGMA, "optimizer": f"Adam {lr:g}"}
        self.data_description = "scikit-learn digits (1,500 training images) upscaled to 32x32"
        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")

        # The reparameterisation noise comes from the trainer's numpy Generator (not a
        # stateful TF op), so a checkpoint of that Generator resumes it exactly.
        @tf.function
        def step(x, eps):
            with tf.GradientTape() as tape:
                mean, log_var = encoder(x, training=True)
                z = mean + tf.exp(0.5 * log_var) * eps
                recon = decoder(z, training=True)
                rec = tf.reduce_mean(tf.reduce_sum(tf.square(recon - x), [1, 2, 3])) / (2 * RECON_SIGMA**2)
                kl = tf.reduce_mean(-0.5 * tf.reduce_sum(1 + log_var - tf.square(mean) - tf.exp(log_var), 1))
                loss = rec + kl
            grads = per_replica(tape.gradient(loss, model.trainable_variables))
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return rec, kl

        self._step = replicated(step)

    def sample(self):
        return self.images[self.rng.integers(len(self.images), size=self.batch)]

    def fit(self, x):
        eps = self.rng.standard_normal((len(x), LATENT)).astype(np.float32)
        rec, kl = self._step(x, eps)
        return {"recon": rec, "kl": kl}

    def step(self):
        return self.fit(self.sample())


def evaluate(model, n: int = 500, images=None) -> dict[str, float]:
    """Reconstruction PSNR on held-out digits (or ``images``, 32x32x1); classifier
    confidence on random-z decodes."""
    from genimg_export.zoo import data, digit_classifier

    test = data.digits("test")[0] if images is None else np.stack(images)
    mean, _ = model.get_layer("encoder")(test, training=False)
    recon = model.get_layer("decoder")(mean, training=False).numpy()
    samples = model.get_layer("decoder")(sample_inputs(n, seed=99)["z"], training=False).numpy()
    return {"recon_psnr_db": round(data.psnr(recon, test), 3), **digit_classifier.sample_quality(samples)}


SPEC = register(
    ModelSpec(
        name="vae",
        task="autoencoder",
        description="variational autoencoder of digits: decode z(16) -> 32x32 (default), encode image -> z",
        signatures=(
            Signature("serving_default", (Z,), (IMAGE,), submodel="decoder"),
            Signature("encode", (IMAGE,), (Z_MEAN, Z_LOG_VAR), submodel="encoder"),
        ),
        build=build,
        sample_inputs=sample_inputs,
        calibration_inputs=calibration_inputs,
        tolerances=tolerances(),
        make_trainer=Trainer,
        evaluate=evaluate,
        default_steps=2500,
        quality_target=("mean_confidence", ">=", 0.8),
    )
)
