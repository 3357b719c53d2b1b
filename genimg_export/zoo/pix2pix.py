"""pix2pix: U-Net restoration generator that removes noise and fills holes.

Encoder of strided 4x4 convs, decoder of 4x4 transpose convs with skip
connections (Isola et al. 2017), trained with L1 (x100) + a PatchGAN
discriminator on (degraded, clean) pairs of photo crops. Degradation:
Gaussian noise (sigma 0.15 in [-1, 1] units) and 1-3 grey rectangular holes.
Any H x W that is a multiple of 16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genimg_export.zoo.registry import register
from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

DEGRADED = TensorSpec("degraded", "float32", (None, None, 3), (-1.0, 1.0),
                      "noisy RGB image with holes, H and W multiples of 16")
RESTORED = TensorSpec("restored", "float32", (None, None, 3), (-1.0, 1.0), "restored RGB image, same size")
CROP, L1_WEIGHT = 64, 100.0


def build(widths=(32, 64, 96, 128)):
    import keras
    from keras import layers

    x_in = keras.Input((None, None, 3), name="degraded")
    x, skips = x_in, []
    for i, n in enumerate(widths):
        x = layers.Conv2D(n, 4, strides=2, padding="same")(x)
        if i:
            x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
        skips.append(x)
    for n, skip in zip(reversed(widths[:-1]), reversed(skips[:-1])):
        x = layers.Conv2DTranspose(n, 4, strides=2, padding="same")(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Concatenate()([x, skip])
    x = layers.Conv2DTranspose(32, 4, strides=2, padding="same", activation="relu")(x)
    x = layers.Concatenate()([x, x_in])
    restored = layers.Conv2D(3, 3, padding="same", activation="tanh", name="restored")(x)
    return keras.Model(x_in, restored, name="pix2pix")


def patch_discriminator():
    """(degraded, candidate) pair -> grid of real/fake logits (a PatchGAN)."""
    import keras
    from keras import layers

    a, b = keras.Input((None, None, 3)), keras.Input((None, None, 3))
    x = layers.Concatenate()([a, b])
    for n in (32, 64, 128):
        x = layers.LeakyReLU(0.2)(layers.Conv2D(n, 4, strides=2, padding="same")(x))
    return keras.Model([a, b], layers.Conv2D(1, 4, padding="same")(x), name="patchgan")


def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=(64, 64)):
    from genimg_export.zoo import data

    rng = np.random.default_rng(seed)
    h, w = size
    clean = data.random_patches(data.photos("held_out"), n, max(h, w), rng)[:, :h, :w]
    return {"degraded": data.degrade(np.ascontiguousarray(clean), rng)}


@dataclass(frozen=True)
class Restoration:
    """The task metric parity reports next to Keras: mean RGB PSNR of restored held-out
    photographs (centre crops, degraded by ``data.degrade`` with a fixed seed) against
    the clean originals."""

    input: str
    output: str
    size: tuple[int, int] = (64, 64)

    @property
    def name(self) -> str:
        return f"PSNR (dB) vs clean: held-out astronaut + coffee, {self.size[0]}x{self.size[1]}, noise + holes"

    def score(self, run, size=None) -> float:
        from genimg_export.zoo import data

        h, w = size or self.size
        clean = np.stack([_centre_crop(img, h, w) for img in data.photos("held_out")])
        restored = run({self.input: data.degrade(clean, np.random.default_rng(2024))})[self.output]
        return float(np.mean([data.psnr(np.clip(r, -1, 1), c) for r, c in zip(restored, clean)]))


def _centre_crop(img: np.ndarray, h: int, w: int) -> np.ndarray:
    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[y : y + h, x : x + w]


def calibration_inputs(n: int, signature: str = "serving_default"):
    from genimg_export.zoo import data

    rng = np.random.default_rng(1234)
    return {"degraded": data.degrade(data.random_patches(data.photos("train"), n, CROP, rng), rng)}


class Trainer:
    def __init__(self, model, seed: int, batch: int = 8, lr: float = 2e-4):
        import keras
        import tensorflow as tf

        from genimg_export.zoo import data
        from genimg_export.zoo.distribute import per_replica, replicated

        self.batch, self.rng = batch, np.random.default_rng(seed)
        self.images = data.photos("train")
        disc = patch_discriminator()
        g_opt, d_opt = keras.optimizers.Adam(lr, beta_1=0.5), keras.optimizers.Adam(lr, beta_1=0.5)
        self.nets = {"generator": model, "discriminator": disc}
        self.optimizers = [(g_opt, model.trainable_variables), (d_opt, disc.trainable_variables)]
        bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self.config = {"batch": batch, "crop": CROP, "loss": f"L1 x{L1_WEIGHT:g} + PatchGAN",
                       "optimizer": f"Adam {lr:g}, beta_1 0.5"}
        self.data_description = ("64x64 crops of scikit-image photographs (astronaut, coffee held out),"
                                 " degraded by data.degrade")

        @tf.function
        def step(degraded, clean):
            with tf.GradientTape() as gt, tf.GradientTape() as dt:
                fake = model(degraded, training=True)
                real_logit = disc([degraded, clean], training=True)
                fake_logit = disc([degraded, fake], training=True)
                d_loss = bce(tf.ones_like(real_logit), real_logit) + bce(tf.zeros_like(fake_logit), fake_logit)
                l1 = tf.reduce_mean(tf.abs(fake - clean))
                g_loss = bce(tf.ones_like(fake_logit), fake_logit) + L1_WEIGHT * l1
            d_grads = per_replica(dt.gradient(d_loss, disc.trainable_variables))
            d_opt.apply_gradients(zip(d_grads, disc.trainable_variables))
            g_opt.apply_gradients(
                zip(per_replica(gt.gradient(g_loss, model.trainable_variables)), model.trainable_variables)
            )
            return l1, d_loss

        self._step = replicated(step)

    def sample(self):
        from genimg_export.zoo import data

        return data.random_patches(self.images, self.batch, CROP, self.rng)

    def fit(self, batch):
        """One step on clean crops (degraded here by ``data.degrade``) or on (degraded, clean) pairs."""
        from genimg_export.zoo import data

        degraded, clean = batch if isinstance(batch, tuple) else (data.degrade(np.asarray(batch), self.rng), batch)
        l1, d_loss = self._step(degraded, clean)
        return {"l1": l1, "d_loss": d_loss}

    def step(self):
        return self.fit(self.sample())


def evaluate(model, images=None) -> dict[str, float]:
    """PSNR of the restored vs the degraded held-out photos (or ``images``; 256x256
    crops, or the largest multiple of 16 all of them hold; fixed seed)."""
    from genimg_export.zoo import data

    rng = np.random.default_rng(2024)
    where = "held-out astronaut + coffee" if images is None else "validation images"
    images = data.photos("held_out") if images is None else images
    side = min(256, *(min(p.shape[:2]) // 16 * 16 for p in images))
    clean = np.stack([p[:side, :side] for p in images])
    degraded = data.degrade(clean, rng)
    restored = np.clip(model(degraded, training=False).numpy(), -1, 1)
    before, after = data.psnr(degraded, clean), data.psnr(restored, clean)
    return {
        "psnr_db": round(after, 3),
        "degraded_psnr_db": round(before, 3),
        "psnr_gain_db": round(after - before, 3),
        "metric": f"RGB PSNR, {where} {side}x{side} crops",
    }


SPEC = register(
    ModelSpec(
        name="pix2pix",
        task="image-to-image",
        description="U-Net restoration generator (denoise + fill holes), L1 + PatchGAN",
        signatures=(Signature("serving_default", (DEGRADED,), (RESTORED,)),),
        build=build,
        sample_inputs=sample_inputs,
        calibration_inputs=calibration_inputs,
        tolerances=tolerances(),
        canonical_size=(64, 64),
        spatial_multiple=16,
        make_trainer=Trainer,
        evaluate=evaluate,
        default_steps=6000,
        quality_target=("psnr_gain_db", ">=", 4.0),
        extra={"task_metric": Restoration(DEGRADED.name, RESTORED.name)},
    )
)
