"""What the GANs of the zoo share: a digit discriminator and the adversarial step.

Not a model module (nothing is registered here).
"""

from __future__ import annotations

import numpy as np

Z_DIM = 100


def digit_discriminator(conditional: bool = False):
    """32x32x1 image (and, if conditional, an int label seen as a learned 32x32
    plane) -> real/fake logit. Strided convs, LeakyReLU, dropout."""
    import keras
    from keras import layers

    image = keras.Input((32, 32, 1))
    inputs, x = [image], image
    if conditional:
        label = keras.Input((), dtype="int32")
        plane = layers.Reshape((32, 32, 1))(layers.Embedding(10, 32 * 32)(label))
        inputs, x = [image, label], layers.Concatenate()([image, plane])
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(1)(layers.Flatten()(x)), name="discriminator")


def generator_trunk(features):
    """(batch, 4*4*128) features -> 32x32x1 image in [-1, 1] by transpose convs + BatchNorm."""
    from keras import layers

    x = layers.Reshape((4, 4, 128))(features)
    for filters in (64, 32):
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    return layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh", name="image")(x)


class AdversarialStep:
    """Non-saturating GAN losses, Adam(2e-4, beta_1=0.5) for both players.

    For conditional models the generator input is [z, label] and the
    discriminator gets [image, label] (labels given as ``real_cond``/``fake_cond``).
    """

    def __init__(self, generator, discriminator, seed: int, batch: int = 64, lr: float = 2e-4):
        import keras
        import tensorflow as tf

        from genimg_export.zoo.distribute import per_replica, replicated

        self.g, self.d, self.batch = generator, discriminator, batch
        self.rng = np.random.default_rng(seed)
        self.g_opt = keras.optimizers.Adam(lr, beta_1=0.5)
        self.d_opt = keras.optimizers.Adam(lr, beta_1=0.5)
        self.nets = {"generator": generator, "discriminator": discriminator}
        self.optimizers = [(self.g_opt, generator.trainable_variables), (self.d_opt, discriminator.trainable_variables)]
        bce = keras.losses.BinaryCrossentropy(from_logits=True)

        @tf.function
        def step(real, g_in, real_cond, fake_cond):
            with tf.GradientTape() as gt, tf.GradientTape() as dt:
                fake = self.g(g_in, training=True)
                real_logit = self.d(self.pair(real, real_cond), training=True)
                fake_logit = self.d(self.pair(fake, fake_cond), training=True)
                d_loss = bce(tf.ones_like(real_logit) * 0.9, real_logit) + bce(tf.zeros_like(fake_logit), fake_logit)
                g_loss = bce(tf.ones_like(fake_logit), fake_logit)
            d_grads = per_replica(dt.gradient(d_loss, self.d.trainable_variables))
            self.d_opt.apply_gradients(zip(d_grads, self.d.trainable_variables))
            g_grads = per_replica(gt.gradient(g_loss, self.g.trainable_variables))
            self.g_opt.apply_gradients(zip(g_grads, self.g.trainable_variables))
            return d_loss, g_loss

        self._step = replicated(step)

    @staticmethod
    def pair(images, cond):
        return images if cond is None else [images, cond]

    def run(self, real, g_in, real_cond=None, fake_cond=None) -> dict[str, float]:
        d_loss, g_loss = self._step(real, g_in, real_cond, fake_cond)
        return {"d_loss": d_loss, "g_loss": g_loss}
