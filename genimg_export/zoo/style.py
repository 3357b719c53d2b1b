"""style: fast style-transfer network (Johnson et al. 2016), any H x W (multiple of 4).

Strided convolutions down, residual blocks, nearest upsampling + conv up,
instance normalisation throughout. No pretrained VGG exists offline, so the
perceptual losses use a *fixed random-filter* feature network: three 3x3 conv
+ ReLU + 2x average-pool stages with He-normal filters drawn from a fixed seed
(random conv features are known to carry texture statistics well enough for
Gram-matrix style losses). Style = Gram matrices at all three stages; content
= features at the second stage.
"""

from __future__ import annotations

import numpy as np

from genimg_export.zoo.registry import register
from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, Tolerance, tolerances

IMAGE = TensorSpec("image", "float32", (None, None, 3), (-1.0, 1.0), "content RGB image, H and W multiples of 4")
STYLED = TensorSpec("styled", "float32", (None, None, 3), (-1.0, 1.0), "stylised RGB image, same size")
DEFAULT_STYLE = "brick"
STYLE_WEIGHT, CONTENT_WEIGHT, TV_WEIGHT = 10.0, 1.0, 0.02
CROP = 96  # training crop side


def build(width: int = 16, blocks: int = 3):
    import keras
    from keras import layers

    def conv_in(x, n, k=3, strides=1):
        x = layers.Conv2D(n, k, strides=strides, padding="same")(x)
        return layers.ReLU()(layers.GroupNormalization(groups=n)(x))  # groups == channels: instance norm

    image = keras.Input((None, None, 3), name="image")
    x = conv_in(image, width, 9)
    x = conv_in(x, width * 2, strides=2)
    x = conv_in(x, width * 4, strides=2)
    for _ in range(blocks):
        y = conv_in(x, width * 4)
        y = layers.GroupNormalization(groups=width * 4)(layers.Conv2D(width * 4, 3, padding="same")(y))
        x = layers.Add()([x, y])
    for n in (width * 2, width):
        x = conv_in(nearest_upsample(x), n)
    styled = layers.Conv2D(3, 9, padding="same", activation="tanh", name="styled")(x)
    return keras.Model(image, styled, name="style")


def nearest_upsample(x):
    """2x nearest-neighbour upsampling as four channel copies + depth_to_space:
    the same values as UpSampling2D, but LiteRT keeps H x W dynamic for it."""
    from keras import layers

    from genimg_export.zoo.layers import PixelShuffle

    return PixelShuffle(2)(layers.Concatenate()([x, x, x, x]))


def feature_net(seed: int = 7):
    """The fixed random-filter feature extractor (never trained)."""
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)
    x_in = keras.Input((None, None, 3))
    x, outs = x_in, []
    for n in (32, 64, 64):
        x = layers.Conv2D(n, 3, padding="same", activation="relu", kernel_initializer=init, trainable=False)(x)
        outs.append(x)
        x = layers.AveragePooling2D(2)(x)
    return keras.Model(x_in, outs, name="features")


def gram(features):
    import tensorflow as tf

    shape = tf.shape(features)
    flat = tf.reshape(features, (shape[0], -1, shape[3]))
    return tf.matmul(flat, flat, transpose_a=True) / tf.cast(tf.shape(flat)[1], tf.float32)


def mean_variation(images):
    """Total variation per pixel and channel (so its weight does not depend on the crop size)."""
    import tensorflow as tf

    dy = tf.abs(images[:, 1:] - images[:, :-1])
    dx = tf.abs(images[:, :, 1:] - images[:, :, :-1])
    return tf.reduce_mean(dy) + tf.reduce_mean(dx)


def style_loss(features, style_grams):
    import tensorflow as tf

    return tf.add_n([tf.reduce_mean(tf.square(gram(f) - g)) for f, g in zip(features, style_grams)])


def style_image(name_or_path: str = DEFAULT_STYLE) -> np.ndarray:
    """A bundled texture by name, or a user's image file, as (1, H, W, 3) in [-1, 1]."""
    from genimg_export.zoo import data

    if name_or_path in data.TEXTURES:
        return data.texture(name_or_path)[None]
    from genimg_edge.images import ImageError, load_image
    from genimg_export.errors import InvalidInputError

    try:
        return load_image(name_or_path)[None]
    except ImageError as e:
        raise InvalidInputError(f"style image: {e} (or use a bundled texture: {', '.join(data.TEXTURES)})") from e


def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=(64, 64)):
    from genimg_export.zoo import data

    rng = np.random.default_rng(seed)
    h, w = size
    return {"image": data.random_patches(data.photos("held_out"), n, max(h, w), rng)[:, :h, :w]}


def calibration_inputs(n: int, signature: str = "serving_default"):
    from genimg_export.zoo import data

    return {"image": data.random_patches(data.photos("train"), n, 64, np.random.default_rng(1234))}


class Trainer:
    """Content + Gram style + total-variation loss on 96x96 photo crops, Adam 1e-3."""

    def __init__(self, model, seed: int, batch: int = 4, style: str = DEFAULT_STYLE, lr: float = 1e-3):
        import keras
        import tensorflow as tf

        from genimg_export.zoo import data
        from genimg_export.zoo.distribute import per_replica, replicated

        self.model, self.batch = model, batch
        self.rng = np.random.default_rng(seed)
        self.images = data.photos("train")
        self.features = feature_net()
        self.style_grams = [gram(f) for f in self.features(style_image(style)[:, :256, :256])]
        optimizer = keras.optimizers.Adam(lr)
        self.nets, self.optimizers = {"generator": model}, [(optimizer, model.trainable_variables)]
        self.config = {
            "style": style, "batch": batch, "crop": CROP, "lr": lr,
            "weights": {"style": STYLE_WEIGHT, "content": CONTENT_WEIGHT, "tv": TV_WEIGHT},
            "feature_net": "fixed random 3x3 convs (seed 7), 3 stages",
        }
        self.data_description = (f"content: 96x96 crops of scikit-image photographs (astronaut, coffee held out);"
                                 f" style: {style}")

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                y = model(x, training=True)
                fy, fx = self.features(y), self.features(x)
                s = style_loss(fy, self.style_grams)
                c = tf.reduce_mean(tf.square(fy[1] - fx[1]))
                tv = mean_variation(y)
                loss = STYLE_WEIGHT * s + CONTENT_WEIGHT * c + TV_WEIGHT * tv
            grads = per_replica(tape.gradient(loss, model.trainable_variables))
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return s, c, loss

        self._step = replicated(step)

    def sample(self):
        from genimg_export.zoo import data

        return data.random_patches(self.images, self.batch, CROP, self.rng)

    def fit(self, content):
        s, c, loss = self._step(content)
        return {"loss": loss, "style": s, "content": c}

    def step(self):
        return self.fit(self.sample())


def evaluate(model, style: str = DEFAULT_STYLE, images=None) -> dict[str, float]:
    """style_ratio: style loss of the output over that of the content image itself
    (held-out photos or ``images``, 256x256 crops or the largest multiple of 4
    all hold); content_ratio: content loss of the output over that of the style
    image, both against the content image."""
    from genimg_export.zoo import data

    features = feature_net()
    grams = [gram(f) for f in features(style_image(style)[:, :256, :256])]
    images = data.photos("held_out") if images is None else images
    side = min(256, *(min(p.shape[:2]) // 4 * 4 for p in images))
    content = np.stack([p[:side, :side] for p in images])
    out = model(content, training=False)
    f_out, f_in = features(out), features(content)
    target = style_image(style)[:, :side, :side]
    if target.shape[1:3] != (side, side):  # a style image smaller than the content crops
        target = data.resize(target, side, side)
    f_style = features(np.repeat(target, len(content), 0))
    s_out, s_in = float(style_loss(f_out, grams)), float(style_loss(f_in, grams))
    c_out = float(np.mean((f_out[1].numpy() - f_in[1].numpy()) ** 2))
    c_style = float(np.mean((f_style[1].numpy() - f_in[1].numpy()) ** 2))
    return {
        "style_ratio": round(s_out / s_in, 4),
        "content_ratio": round(c_out / c_style, 4),
        "style_loss": round(s_out, 5),
        "content_image_style_loss": round(s_in, 5),
        "style": style,
    }


# Instance norm re-normalises after every conv (11 times), from statistics of the
# whole feature map, so int8 rounding compounds; measured on the shipped weights,
# full int8 gives 30.2-33 dB at 48x48 to 256x256 (28-29 dB at 32x32, 24-26 dB at
# 16x16, where the statistics come from 4x4 maps), hence parity at 48 px and up
# and a 28 dB floor that leaves room for the sampled inputs. Since the norms' statistics
# stay float in int8 files (exporters/norm_stats), parity at 48x48 / 48x56 gives TFLite
# 33.8 dB and ONNX 32.8 dB (3 Dec 2026); the floor was kept, the other sizes not remeasured.
INT8_TOLERANCE = Tolerance(
    min_psnr_db=28.0, reason="int8 error compounds through 11 instance norms (32.8-33.8 dB measured at 48 px)"
)

SPEC = register(
    ModelSpec(
        name="style",
        task="image-to-image",
        description=f"fast style transfer (Johnson et al.), style '{DEFAULT_STYLE}', instance norm",
        signatures=(Signature("serving_default", (IMAGE,), (STYLED,)),),
        build=build,
        sample_inputs=sample_inputs,
        calibration_inputs=calibration_inputs,
        tolerances=tolerances(tflite_int8=INT8_TOLERANCE, onnx_int8=INT8_TOLERANCE),
        canonical_size=(64, 64),
        spatial_multiple=4,
        parity_side=48,
        make_trainer=Trainer,
        evaluate=evaluate,
        default_steps=1500,
        quality_target=("style_ratio", "<=", 0.5),
    )
)
