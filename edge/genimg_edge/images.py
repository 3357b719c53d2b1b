"""Image files <-> float arrays in [-1, 1]; shared by the edge runner, the
serving client and the toolchain. Needs only numpy and Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Decompression-bomb guard and the default cap for one request/image.
DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """An image file that cannot be used; the message says why."""


def load_image(path: str | Path, channels: int = 3, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as float32 (H, W, channels) in [-1, 1].

    Grayscale is expanded to RGB and RGBA is composited on white when RGB is
    asked for; RGB is converted to luminance when one channel is asked for.

    Example:
        >>> x = load_image("lr.png")          # (H, W, 3), values in [-1, 1]
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path} is a directory; expected an image file (PNG, JPEG, ...)")
    if not path.is_file():
        raise ImageError(f"no such image file: {path}")
    try:
        with Image.open(path) as img:
            if img.width * img.height > max_pixels:
                raise ImageError(
                    f"{path} is {img.width}x{img.height} = {img.width * img.height:,} pixels,"
                    f" over the cap of {max_pixels:,}; tile it or raise the cap"
                )
            img.load()
            img = _convert(img, channels)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path} is not a readable image (PNG, JPEG, ...): {e}") from e
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr / 127.5 - 1.0


def _convert(img: Image.Image, channels: int) -> Image.Image:
    if channels == 1:
        return img.convert("L")
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Float image(s) in [-1, 1] -> uint8 in [0, 255] (values outside are clipped)."""
    return np.clip(np.rint((np.asarray(arr, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def save_image(path: str | Path, arr: np.ndarray) -> Path:
    """Write one (H, W, C) float image in [-1, 1] (or uint8 pixels) as PNG/JPEG (by suffix), atomically."""
    path, arr = Path(path), np.asarray(arr)
    pixels = arr if arr.dtype == np.uint8 else to_uint8(arr)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(pixels).save(tmp, format=_format(path))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _format(path: Path) -> str:
    ext = path.suffix.lower()
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
    if ext not in formats:
        raise ImageError(f"cannot write {path}: use one of {', '.join(formats)}")
    return formats[ext]


def grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, H, W, C) images into one (rows·H, cols·W, C) image, in [-1, 1]."""
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y : y + h, x : x + w] = img
    return out
