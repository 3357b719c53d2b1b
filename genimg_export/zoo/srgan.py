"""srgan: x4 super-resolution generator (SRGAN / SRResNet family).

Residual blocks with PReLU (one alpha per layer: exported as LeakyRelu, which
int8 runtimes run quantized; ``prelu="channel"`` builds SRGAN's per-channel
form: as good on the held-out photos, slower in int8; benchmarks/README.md),
two x2 sub-pixel (depth_to_space) upsamplers, and a global skip that adds the
bicubic x4 upscale of the input. The skip is a fixed 5x5 convolution producing
the 16 sub-pixel phases followed by depth_to_space, so no resize op is needed
and any H x W works in every backend; the network only learns the residual detail.
Trained on random patches of scikit-image photographs with an L1 pixel loss,
the SRResNet stage of SRGAN; astronaut and coffee are held out.
"""

from __future__ import annotations

import numpy as np

from genimg_export.errors import InvalidInputError
from genimg_export.zoo.registry import register
from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

SCALE = 4
LR = TensorSpec("lr", "float32", (None, None, 3), (-1.0, 1.0), "low-resolution RGB image")
HR = TensorSpec("hr", "float32", (None, None, 3), (-1.0, 1.0), "x4 super-resolved RGB image")
PATCH = 24  # low-resolution training patch; high-resolution is 96
# PReLU forms: one alpha per channel (SRGAN's), or one per layer. A one-alpha
# PReLU is exactly LeakyRelu(alpha), which int8 runtimes have a kernel for.
PRELU_AXES = {"channel": [1, 2], "shared": [1, 2, 3]}


def build(filters: int = 32, blocks: int = 6, prelu: str = "shared"):
    """The generator. ``prelu``: "channel" (an alpha per channel) or "shared" (one per layer)."""
    import keras
    from keras import layers

    from genimg_export.zoo.layers import PixelShuffle

    if prelu not in PRELU_AXES:
        raise InvalidInputError(f"prelu must be one of {', '.join(PRELU_AXES)}, got '{prelu}'")

    def conv(n, k=3, **kw):
        return layers.Conv2D(n, k, padding="same", **kw)

    def act(t):
        return layers.PReLU(shared_axes=PRELU_AXES[prelu])(t)

    lr = keras.Input((None, None, 3), name="lr")
    x = act(conv(filters, 5)(lr))
    head = x
    for _ in range(blocks):
        y = act(conv(filters)(x))
        x = layers.Add()([x, conv(filters)(y)])
    x = layers.Add()([head, conv(filters)(x)])
    for _ in range(2):
        x = act(PixelShuffle(2)(conv(filters * 4)(x)))
    residual = conv(3, 3, kernel_initializer="zeros")(x)
    bicubic = conv(3 * SCALE * SCALE, 5, use_bias=False, trainable=False, name="bicubic_x4")
    skip = PixelShuffle(SCALE)(bicubic(lr))
    bicubic.set_weights([bicubic_kernel(SCALE)])
    hr = layers.Add(name="hr")([skip, residual])
    return keras.Model(lr, hr, name="srgan")


def prelu_form(model) -> str:
    """"shared" when every PReLU of ``model`` has one alpha, else "channel" (read from the weights)."""
    alphas = [layer.get_weights()[0] for layer in model.layers if type(layer).__name__ == "PReLU"]
    return "shared" if alphas and all(a.size == 1 for a in alphas) else "channel"


def _cubic(t: float, a: float = -0.5) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_kernel(r: int, channels: int = 3) -> np.ndarray:
    """5x5 conv kernel whose r*r*C outputs, after depth_to_space(r), are the
    bicubic (Keys, a=-0.5) upscale: phase i samples at offset (2i+1-r)/(2r)."""
    taps = np.array([[_cubic((2 * i + 1 - r) / (2 * r) - k) for k in range(-2, 3)] for i in range(r)])
    kernel = np.zeros((5, 5, channels, r * r * channels), np.float32)
    for i in range(r):
        for j in range(r):
            for c in range(channels):
                kernel[:, :, c, (i * r + j) * channels + c] = np.outer(taps[i], taps[j])
    return kernel


def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=(16, 16)):
    """Real photo patches (held-out images), downscaled: what a user would feed."""
    from genimg_export.zoo import data

    rng = np.random.default_rng(seed)
    h, w = size
    big = data.random_patches(data.photos("held_out"), n, max(h, w) * SCALE, rng)
    return {"lr": data.resize(big, h, w)}


def calibration_inputs(n: int, signature: str = "serving_default"):
    from genimg_export.zoo import data

    rng = np.random.default_rng(1234)
    hr = data.random_patches(data.photos("train"), n, PATCH * SCALE, rng)
    return {"lr": data.downscale(hr, SCALE)}


class Trainer:
    """L1 pixel loss on 24->96 patches, Adam 2e-4."""

    def __init__(self, model, seed: int, batch: int = 16, lr: float = 2e-4):
        import keras
        import tensorflow as tf

        from genimg_export.zoo import data
        from genimg_export.zoo.distribute import per_replica, replicated

        self.model, self.batch = model, batch
        self.rng = np.random.default_rng(seed)
        self.images = data.photos("train")
        self.optimizer = keras.optimizers.Adam(lr)
        self.nets, self.optimizers = {"generator": model}, [(self.optimizer, model.trainable_variables)]
        self.config = {"filters": 32, "blocks": 6, "prelu": prelu_form(model), "batch": batch, "lr_patch": PATCH,
                       "loss": "L1", "optimizer": f"Adam {lr:g}"}
        self.data_description = ("random 96x96 crops of scikit-image photographs (astronaut, coffee held out),"
                                 " bicubic-downscaled x4")

        @tf.function
        def step(lr, hr):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.abs(self.model(lr, training=True) - hr))
            grads = per_replica(tape.gradient(loss, self.model.trainable_variables))
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
            return loss

        self._step = replicated(step)

    def sample(self):
        from genimg_export.zoo import data

        return data.random_patches(self.images, self.batch, PATCH * SCALE, self.rng)

    def fit(self, hr):
        """One step on a batch of 96x96 high-resolution crops (LR made by ``data.downscale``)."""
        from genimg_export.zoo import data

        hr = np.asarray(hr)
        return {"l1": self._step(data.downscale(hr, SCALE), hr)}

    def step(self):
        return self.fit(self.sample())


def evaluate(model, images=None) -> dict[str, float]:
    """PSNR on the Y channel of the held-out photographs (or ``images``), x4 down
    then restored, against bicubic upscaling of the same low-resolution image."""
    from genimg_export.zoo import data

    ours, bicubic = [], []
    for img in data.photos("held_out") if images is None else images:
        h, w = (img.shape[0] // SCALE) * SCALE, (img.shape[1] // SCALE) * SCALE
        hr = img[None, :h, :w]
        lr = data.downscale(hr, SCALE)
        sr = np.clip(model(lr, training=False).numpy(), -1, 1)
        up = data.resize(lr, h, w)
        ours.append(data.psnr(data.luma(sr), data.luma(hr)))
        bicubic.append(data.psnr(data.luma(up), data.luma(hr)))
    return {
        "psnr_db": round(float(np.mean(ours)), 3),
        "bicubic_psnr_db": round(float(np.mean(bicubic)), 3),
        "psnr_gain_db": round(float(np.mean(ours) - np.mean(bicubic)), 3),
        "metric": f"Y-channel PSNR, {'held-out astronaut + coffee' if images is None else 'validation images'},"
                  " x4 bicubic-downscaled",
    }


SPEC = register(
    ModelSpec(
        name="srgan",
        task="image-to-image",
        description="x4 super-resolution generator (residual blocks, PReLU, pixel shuffle)",
        signatures=(Signature("serving_default", (LR,), (HR,)),),
        build=build,
        sample_inputs=sample_inputs,
        calibration_inputs=calibration_inputs,
        tolerances=tolerances(),
        canonical_size=(64, 64),
        scale=SCALE,
        make_trainer=Trainer,
        evaluate=evaluate,
        default_steps=2500,
        quality_target=("psnr_gain_db", ">=", 1.0),
    )
)
