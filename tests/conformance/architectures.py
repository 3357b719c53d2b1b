"""Well-known generator architectures, built in Keras from their papers' descriptions.

Each ``Arch`` builds a seeded model at a small size (the default suite) or at
the paper's size (``full=True``, slow tests), initialised as the paper does so
that int8 measures the tool and not a random network's runaway activations
(ESRGAN: residual-block convs scaled by 0.1, residual scaling 0.2; the others
use their papers' He/normal(0.02) schemes); CycleGAN, random-init too unstable a function
for any int8 file to follow, is then trained briefly (``cyclegan_resnet``). ``save_hub``
writes the model as TF-Hub-style SavedModel: a ``tf.Module`` whose ``serving_default`` takes and
returns images in 0..255, as published SR models do.

Keras models see images in [-1, 1] (GANs, pix2pix, CycleGAN) or [0, 1] (SR
networks); ``inputs(n, size, seed)`` draws plausible values: photo patches,
normal latents, one-hot classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conformance import layers as custom  # noqa: F401  (registers the custom layers)


@dataclass(frozen=True)
class Arch:
    """One architecture: ``build(full)`` -> Keras model; ``image_range`` of its image I/O."""

    name: str
    build: Callable
    image_range: tuple[float, float]
    fixed: dict | None = None  # (H, W) of image inputs when the model is not fully convolutional
    custom_layers: bool = False

    def model(self, full: bool = False):
        import keras

        keras.utils.set_random_seed(0)
        return self.build(full)

    def inputs(self, model, n: int, size=(16, 16), seed: int = 0) -> dict[str, np.ndarray]:
        """Plausible inputs keyed by the model's input names."""
        rng = np.random.default_rng(seed)
        return {t.name.split(":")[0]: self._draw(t, n, size, rng) for t in model.inputs}

    def _draw(self, t, n, size, rng):
        shape = list(t.shape[1:])
        if len(shape) == 3 and shape[2] in (1, 3):  # an image
            h, w = shape[0] or size[0], shape[1] or size[1]
            return _photos(n, h, w, shape[2], rng, self.image_range)
        if t.name.startswith("class"):
            return np.eye(shape[0], dtype=np.float32)[rng.integers(0, shape[0], n)]
        return rng.standard_normal((n, *shape)).astype(np.float32)


def _photos(n, h, w, channels, rng, value_range):
    from genimg_export.zoo import data

    side = max(h, w)
    patches = data.random_patches(data.photos("train"), n, side, rng)  # [-1, 1]
    patches = data.resize(patches, h, w) if (h, w) != (side, side) else patches
    if channels == 1:
        patches = data.luma(patches)[..., None] if data.luma(patches).ndim == 3 else data.luma(patches)
    lo, hi = value_range
    return ((patches + 1) / 2 * (hi - lo) + lo).astype(np.float32)


def _he(scale: float = 1.0):
    import keras

    return keras.initializers.VarianceScaling(2.0 * scale * scale, "fan_in", "truncated_normal", seed=None)


def _torch_default():
    """PyTorch's default conv init (kaiming uniform, a=sqrt(5)), which EDSR's code keeps."""
    import keras

    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _conv(filters, k=3, stride=1, scale=1.0, init=None, **kw):
    from keras import layers

    return layers.Conv2D(filters, k, stride, padding="same", kernel_initializer=init or _he(scale), **kw)


# --- super-resolution -----------------------------------------------------------------

def rrdbnet(full: bool):
    """ESRGAN generator (Wang et al. 2018): RRDB trunk, nearest x2 x2 upsampling, LeakyReLU 0.2."""
    import keras
    from keras import layers

    nf, gc, blocks = (64, 32, 23) if full else (16, 8, 1)
    lrelu = lambda: layers.LeakyReLU(0.2)  # noqa: E731

    def dense_block(x):
        feats = [x]
        for _ in range(4):
            h = _conv(gc, scale=0.1)(layers.Concatenate()(feats) if len(feats) > 1 else x)
            feats.append(lrelu()(h))
        h = _conv(nf, scale=0.1)(layers.Concatenate()(feats))
        return layers.Add()([x, layers.Rescaling(0.2)(h)])

    def rrdb(x):
        h = dense_block(dense_block(dense_block(x)))
        return layers.Add()([x, layers.Rescaling(0.2)(h)])

    x = keras.Input((None, None, 3), name="lr")
    fea = _conv(nf)(x)
    trunk = fea
    for _ in range(blocks):
        trunk = rrdb(trunk)
    fea = layers.Add()([fea, _conv(nf)(trunk)])
    for _ in range(2):
        fea = lrelu()(_conv(nf)(layers.UpSampling2D(2, interpolation="nearest")(fea)))
    out = _conv(3, name="sr")(lrelu()(_conv(nf)(fea)))
    return keras.Model(x, out, name="rrdbnet")


def srvgg_compact(full: bool):
    """Real-ESRGAN's SRVGGNetCompact: conv + PReLU stack, pixel shuffle x4, plus the upsampled input."""
    import keras
    from keras import layers

    nf, convs, r = (64, 16, 4) if full else (16, 4, 4)
    x = keras.Input((None, None, 3), name="lr")
    h = layers.PReLU(shared_axes=[1, 2])(_conv(nf)(x))
    for _ in range(convs):
        h = layers.PReLU(shared_axes=[1, 2])(_conv(nf)(h))
    h = custom.DepthToSpace(r)(_conv(3 * r * r)(h))
    base = layers.UpSampling2D(r, interpolation="nearest")(x)
    return keras.Model(x, layers.Add(name="sr")([h, base]), name="srvgg_compact")


def edsr_baseline(full: bool):
    """EDSR-baseline (Lim et al. 2017): 16 residual blocks of 64, no BN, pixel-shuffle x2."""
    import keras
    from keras import layers

    nf, blocks = (64, 16) if full else (16, 2)
    conv = lambda f, **kw: _conv(f, init=_torch_default(), **kw)  # noqa: E731
    x = keras.Input((None, None, 3), name="lr")
    head = conv(nf)(x)
    h = head
    for _ in range(blocks):
        r = conv(nf)(layers.ReLU()(conv(nf)(h)))
        h = layers.Add()([h, r])
    h = layers.Add()([head, conv(nf)(h)])
    h = custom.DepthToSpace(2)(conv(nf * 4)(h))
    return keras.Model(x, conv(3, name="sr")(h), name="edsr_baseline")


def fsrcnn(full: bool):
    """FSRCNN (Dong et al. 2016), d=56 s=12 m=4 on the Y channel; x2 by a 9x9 transposed conv."""
    import keras
    from keras import layers

    d, s, m = (56, 12, 4) if full else (16, 8, 2)
    prelu = lambda: layers.PReLU(shared_axes=[1, 2])  # noqa: E731
    x = keras.Input((None, None, 1), name="y")
    h = prelu()(_conv(d, 5)(x))
    h = prelu()(_conv(s, 1)(h))
    for _ in range(m):
        h = prelu()(_conv(s)(h))
    h = prelu()(_conv(d, 1)(h))
    init = keras.initializers.RandomNormal(0.0, 0.001)
    out = layers.Conv2DTranspose(1, 9, 2, padding="same", kernel_initializer=init, name="sr")(h)
    return keras.Model(x, out, name="fsrcnn")


def espcn(full: bool):
    """ESPCN (Shi et al. 2016): 5x5 64, 3x3 32, tanh, 3x3 to r² channels, pixel shuffle x3 (Y channel)."""
    import keras

    f1, f2 = (64, 32) if full else (16, 8)
    x = keras.Input((None, None, 1), name="y")
    h = _conv(f1, 5, activation="tanh")(x)
    h = _conv(f2, activation="tanh")(h)
    out = custom.DepthToSpace(3, name="sr")(_conv(9)(h))
    return keras.Model(x, out, name="espcn")


# --- image-to-image GANs --------------------------------------------------------------

def pix2pix_unet(full: bool):
    """pix2pix U-Net generator (Isola et al. 2017): 8 (full) strided-conv levels, BatchNorm,
    Dropout 0.5 in the first three up levels, skip concatenations, tanh."""
    import keras
    from keras import layers

    side, base, depth = (256, 64, 8) if full else (32, 8, 5)
    init = keras.initializers.RandomNormal(0.0, 0.02)
    x = keras.Input((side, side, 3), name="image")
    skips, h = [], x
    for i in range(depth):
        f = min(base * 2 ** i, base * 8)
        h = layers.Conv2D(f, 4, 2, padding="same", kernel_initializer=init, use_bias=False)(h)
        h = layers.LeakyReLU(0.2)(h if i == 0 else layers.BatchNormalization()(h))
        skips.append(h)
    for i, skip in enumerate(reversed(skips[:-1])):
        f = skip.shape[-1]
        h = layers.BatchNormalization()(layers.Conv2DTranspose(f, 4, 2, padding="same", kernel_initializer=init,
                                                               use_bias=False)(h))
        h = layers.ReLU()(layers.Dropout(0.5)(h) if i < 3 else h)
        h = layers.Concatenate()([h, skip])
    out = layers.Conv2DTranspose(3, 4, 2, padding="same", kernel_initializer=init, activation="tanh",
                                 name="translated")(h)
    return keras.Model(x, out, name="pix2pix_unet")


def cyclegan_resnet(full: bool):
    """CycleGAN ResNet generator (Zhu et al. 2017): reflection padding, instance norm,
    two stride-2 downs, 9 residual blocks (full), two transposed-conv ups, tanh; N(0, 0.02)
    init, then trained briefly (``_identity_trained``).

    Random-init, it is no network a user has: every instance norm scales each channel to unit
    spread whatever its contrast, so on 16x16 photo patches the float model turns half a grey
    level into another picture (its input merely rounded to an int8 file's grid: 27.3 dB against
    itself), under a floor no int8 file can then meet. Trained, the same rounding costs 52.6 dB
    (benchmarks/user_models.md, benchmarks/cyclegan_int8.py).
    """
    import keras
    from keras import layers

    ngf, blocks = (64, 9) if full else (8, 2)
    init = keras.initializers.RandomNormal(0.0, 0.02)
    conv = lambda f, k, s=1, pad="valid": layers.Conv2D(f, k, s, padding=pad, kernel_initializer=init)  # noqa: E731
    x = keras.Input((None, None, 3), name="image")
    h = layers.ReLU()(custom.InstanceNorm()(conv(ngf, 7)(custom.ReflectionPad2D(3)(x))))
    for mult in (2, 4):
        h = layers.ReLU()(custom.InstanceNorm()(conv(ngf * mult, 3, 2, "same")(h)))
    for _ in range(blocks):
        r = layers.ReLU()(custom.InstanceNorm()(conv(ngf * 4, 3)(custom.ReflectionPad2D(1)(h))))
        r = custom.InstanceNorm()(conv(ngf * 4, 3)(custom.ReflectionPad2D(1)(r)))
        h = layers.Add()([h, r])
    for mult in (2, 1):
        up = layers.Conv2DTranspose(ngf * mult, 3, 2, padding="same", kernel_initializer=init)
        h = layers.ReLU()(custom.InstanceNorm()(up(h)))
    out = layers.Activation("tanh", name="translated")(conv(3, 7)(custom.ReflectionPad2D(3)(h)))
    return _identity_trained(keras.Model(x, out, name="cyclegan_resnet"))


_TRAINED: dict = {}  # (name, params) -> trained weights: each saved form of a session reuses them


def _identity_trained(model, steps: int = 300, batch: int = 16, side: int = 16):
    """``model`` after ``steps`` seeded Adam steps (lr 1e-3, beta1 0.5 as the paper's) of
    CycleGAN's identity loss, L1(G(y), y), on random patches of the bundled photos (seed 2; the
    matrix feeds seed 1's), with y's per-channel mean taken out of the target: instance norm removes
    it by design, so no such generator can return it. 10-25 s on 2 shared CPUs at the small size."""
    import keras
    import tensorflow as tf

    from genimg_export.zoo import data

    key = (model.name, model.count_params())
    if key not in _TRAINED:
        photos, rng = data.photos("train"), np.random.default_rng(2)
        optimizer = keras.optimizers.Adam(1e-3, beta_1=0.5)

        @tf.function
        def step(y):
            target = y - tf.reduce_mean(y, axis=(1, 2), keepdims=True)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.abs(model(y, training=True) - target))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

        for _ in range(steps):
            step(tf.constant(data.random_patches(photos, batch, side, rng)))
        _TRAINED[key] = model.get_weights()
    model.set_weights(_TRAINED[key])
    return model


# --- decoders from a latent -----------------------------------------------------------

def dcgan_generator(full: bool):
    """The TF DCGAN tutorial's generator: Dense 7x7x256, BN, LeakyReLU, three transposed convs."""
    import keras
    from keras import layers

    f = (256, 128, 64) if full else (32, 16, 8)
    z = keras.Input((100,), name="z")
    h = layers.LeakyReLU()(layers.BatchNormalization()(layers.Dense(7 * 7 * f[0], use_bias=False)(z)))
    h = layers.Reshape((7, 7, f[0]))(h)
    for filters, stride in ((f[1], 1), (f[2], 2)):
        h = layers.Conv2DTranspose(filters, 5, stride, padding="same", use_bias=False)(h)
        h = layers.LeakyReLU()(layers.BatchNormalization()(h))
    out = layers.Conv2DTranspose(1, 5, 2, padding="same", use_bias=False, activation="tanh", name="image")(h)
    return keras.Model(z, out, name="dcgan_generator")


def vae_decoder(full: bool):
    """The TF CVAE tutorial's decoder: latent 2 -> Dense 7x7x32 -> two stride-2 transposed convs -> logits."""
    import keras
    from keras import layers

    z = keras.Input((2,), name="z")
    h = layers.Reshape((7, 7, 32))(layers.Dense(7 * 7 * 32, activation="relu")(z))
    for filters in (64, 32):
        h = layers.Conv2DTranspose(filters, 3, 2, padding="same", activation="relu")(h)
    out = layers.Conv2DTranspose(1, 3, 1, padding="same", activation="sigmoid", name="image")(h)
    return keras.Model(z, out, name="vae_decoder")


def ldm_decoder(full: bool):
    """A latent-diffusion-style VAE decoder: 4-channel latent, GroupNorm + SiLU res blocks,
    one single-head self-attention block at the lowest resolution, nearest x2 ups."""
    import keras
    from keras import layers

    side, ch, ups = (32, 128, 3) if full else (8, 32, 2)
    groups = 32 if full else 8

    def res(h, c):
        r = _conv(c)(layers.Activation("silu")(layers.GroupNormalization(groups)(h)))
        r = _conv(c, scale=0.1)(layers.Activation("silu")(layers.GroupNormalization(groups)(r)))
        skip = h if h.shape[-1] == c else _conv(c, 1)(h)
        return layers.Add()([skip, r])

    def attention(h):
        n = layers.GroupNormalization(groups)(h)
        seq = layers.Reshape((side * side, ch))(n)
        att = layers.MultiHeadAttention(1, ch)(seq, seq)
        return layers.Add()([h, layers.Reshape((side, side, ch))(att)])

    z = keras.Input((side, side, 4), name="latent")
    h = res(attention(res(_conv(ch)(z), ch)), ch)
    for _ in range(ups):
        h = res(_conv(ch)(layers.UpSampling2D(2, interpolation="nearest")(h)), ch)
    h = layers.Activation("silu")(layers.GroupNormalization(groups)(h))
    return keras.Model(z, _conv(3, name="image")(h), name="ldm_decoder")


# --- several inputs / outputs ---------------------------------------------------------

def two_in_two_out(full: bool):
    """A class-conditional restorer: image + one-hot class in; image + 1-channel mask out."""
    import keras
    from keras import layers

    nf = 32 if full else 8
    x = keras.Input((None, None, 3), name="image")
    c = keras.Input((10,), name="class_vector")
    h = _conv(nf, activation="relu")(x)
    bias = layers.Reshape((1, 1, nf))(layers.Dense(nf)(c))
    h = layers.Add()([h, bias])  # broadcast over H x W
    h = _conv(nf, activation="relu")(h)
    image = _conv(3, activation="tanh", name="restored")(h)
    mask = _conv(1, activation="sigmoid", name="mask")(h)
    return keras.Model([x, c], [image, mask], name="two_in_two_out")


def image_and_score(full: bool):
    """An enhancer that also scores its input: image out plus a scalar sigmoid score."""
    import keras
    from keras import layers

    nf = 32 if full else 8
    x = keras.Input((None, None, 3), name="image")
    h = _conv(nf, activation="relu")(x)
    image = _conv(3, activation="tanh", name="enhanced")(_conv(nf, activation="relu")(h))
    score = layers.Dense(1, activation="sigmoid", name="score")(layers.GlobalAveragePooling2D()(h))
    return keras.Model(x, [image, score], name="image_and_score")


ARCHS = {a.name: a for a in (
    Arch("rrdbnet", rrdbnet, (0.0, 1.0)),
    Arch("srvgg_compact", srvgg_compact, (0.0, 1.0), custom_layers=True),
    Arch("edsr_baseline", edsr_baseline, (0.0, 1.0), custom_layers=True),
    Arch("fsrcnn", fsrcnn, (0.0, 1.0)),
    Arch("espcn", espcn, (0.0, 1.0), custom_layers=True),
    Arch("pix2pix_unet", pix2pix_unet, (-1.0, 1.0)),
    Arch("cyclegan_resnet", cyclegan_resnet, (-1.0, 1.0), custom_layers=True),
    Arch("dcgan_generator", dcgan_generator, (-1.0, 1.0)),
    Arch("vae_decoder", vae_decoder, (0.0, 1.0)),
    Arch("ldm_decoder", ldm_decoder, (-1.0, 1.0)),
    Arch("two_in_two_out", two_in_two_out, (-1.0, 1.0)),
    Arch("image_and_score", image_and_score, (-1.0, 1.0)),
)}


def save_hub(arch: Arch, model, path) -> None:
    """Save ``model`` as a TF-Hub-style SavedModel: a tf.Module, ``serving_default`` over
    float32 images in 0..255 (other inputs and non-image outputs as they are)."""
    import tensorflow as tf

    lo, hi = arch.image_range
    specs = [tf.TensorSpec([None, *t.shape[1:]], tf.float32, name=t.name.split(":")[0]) for t in model.inputs]
    names = [n.split(":")[0] for n in model.output_names]

    def to_model(x, spec):
        return x / 255.0 * (hi - lo) + lo if len(spec.shape) == 4 else x

    def to_hub(y):
        return (y - lo) / (hi - lo) * 255.0 if len(y.shape) == 4 and y.shape[-1] in (1, 3) else y

    module = tf.Module()
    module.model = model

    @tf.function(input_signature=specs)
    def serve(*args):
        ys = model([to_model(a, s) for a, s in zip(args, specs)] if len(args) > 1 else to_model(args[0], specs[0]))
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        return {n: to_hub(y) for n, y in zip(names, ys)}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve.get_concrete_function()})
