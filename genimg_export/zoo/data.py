"""Training and evaluation data, all from packages that ship it (nothing downloads).

- digits: scikit-learn's 1,797 8x8 handwritten digits, upscaled to 32x32.
- photographs: scikit-image's bundled images, read from the package folder
  (never through a fetcher); ``astronaut`` and ``coffee`` are held out.
- textures: scikit-image's bundled brick, gravel and grass.

Images are float32 in [-1, 1], NHWC.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

HELD_OUT_PHOTOS = ("astronaut.png", "coffee.png")
TRAIN_PHOTOS = (
    "camera.png", "chelsea.png", "coins.png", "hubble_deep_field.jpg", "ihc.png",
    "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
    "retina.jpg", "rocket.jpg", "text.png", "horse.png", "grass.png", "gravel.png", "brick.png",
)
TEXTURES = ("brick", "gravel", "grass")


def _skimage_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


@functools.cache
def _digits_all() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    images = []
    for img in d.images:  # 0..16 -> 0..255, bicubic up to 32x32
        pil = Image.fromarray((img * 255.0 / 16.0).astype(np.float32), mode="F")
        images.append(np.asarray(pil.resize((32, 32), Image.BICUBIC)))
    x = np.clip(np.stack(images) / 127.5 - 1.0, -1.0, 1.0).astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], d.target[order].astype(np.int32)


def digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 1) in [-1, 1], labels int32); fixed 1,500/297 split."""
    x, y = _digits_all()
    return (x[:1500], y[:1500]) if split == "train" else (x[1500:], y[1500:])


def digits_8x8(images: np.ndarray) -> np.ndarray:
    """32x32 digit images in [-1, 1] -> sklearn-style 8x8 features in 0..16."""
    n = images.shape[0]
    pooled = images.reshape(n, 8, 4, 8, 4).mean(axis=(2, 4))
    return ((pooled + 1.0) * 8.0).reshape(n, 64)


def read_photo(filename: str) -> np.ndarray:
    """A bundled scikit-image picture as RGB float32 (H, W, 3) in [-1, 1]."""
    from PIL import Image

    with Image.open(_skimage_dir() / filename) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    return arr / 127.5 - 1.0


@functools.cache
def photos(split: str = "train") -> tuple[np.ndarray, ...]:
    names = TRAIN_PHOTOS if split == "train" else HELD_OUT_PHOTOS
    return tuple(read_photo(n) for n in names)


def texture(name: str) -> np.ndarray:
    if name not in TEXTURES:
        from genimg_export.errors import InvalidInputError, did_you_mean

        raise InvalidInputError(
            f"unknown texture '{name}'{did_you_mean(name, TEXTURES)}; bundled: {', '.join(TEXTURES)}"
        )
    return read_photo(f"{name}.png")


def random_patches(images, n: int, size: int, rng: np.random.Generator, flip: bool = True) -> np.ndarray:
    """n random (size x size) crops, with random flips, from a list of images."""
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        img = images[rng.integers(len(images))]
        y = rng.integers(img.shape[0] - size + 1)
        x = rng.integers(img.shape[1] - size + 1)
        patch = img[y : y + size, x : x + size]
        if flip and rng.random() < 0.5:
            patch = patch[:, ::-1]
        out[i] = patch
    return out


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of (N, H, W, C) in [-1, 1], antialiased when shrinking."""
    import tensorflow as tf

    out = tf.image.resize(images, (height, width), method="bicubic", antialias=True)
    return np.clip(out.numpy(), -1.0, 1.0).astype(np.float32)


def downscale(images: np.ndarray, factor: int) -> np.ndarray:
    _, h, w, _ = images.shape
    return resize(images, h // factor, w // factor)


def degrade(images: np.ndarray, rng: np.random.Generator, noise: float = 0.15) -> np.ndarray:
    """pix2pix's task: Gaussian noise (sigma in [-1, 1] units) plus 1-3 grey holes
    of 4-12 pixels a side (the same sizes at any image size, so that what the
    model learns on crops holds on whole photos)."""
    out = images + rng.normal(0.0, noise, images.shape).astype(np.float32)
    n, h, w, _ = images.shape
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            hh, ww = rng.integers(4, min(13, h // 2)), rng.integers(4, min(13, w // 2))
            y, x = rng.integers(0, h - hh), rng.integers(0, w - ww)
            out[i, y : y + hh, x : x + ww] = 0.0
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """PSNR in dB between arrays with values in a range of width ``data_range``."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def luma(images: np.ndarray) -> np.ndarray:
    """Y channel (BT.601) of RGB images in [-1, 1], kept in [-1, 1]."""
    return images[..., 0] * 0.299 + images[..., 1] * 0.587 + images[..., 2] * 0.114
