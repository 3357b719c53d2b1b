"""The task's own quality metric, per quantized variant, next to the Keras figure.

Parity says how far an export is from Keras; this says what that costs in the
terms a user cares about (srgan: PSNR against the true high-resolution image).
A spec may bring its own as ``spec.extra["task_metric"]``: an object with a
``name`` and ``score(run, size) -> float`` where ``run`` maps an input dict to
an output dict (pix2pix brings ``zoo.pix2pix.Restoration``). Super-resolution
models (image-to-image, scale > 1) get one built in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SuperResolution:
    """Mean Y-channel PSNR of the restored held-out photographs (centre crops,
    bicubic-downscaled by ``scale``) against the originals."""

    scale: int
    input: str
    output: str
    lr_size: tuple[int, int] = (32, 32)

    @property
    def name(self) -> str:
        h, w = self.lr_size
        return f"Y-PSNR (dB) vs ground truth: held-out astronaut + coffee, {h}x{w} -> x{self.scale}"

    def score(self, run, size=None) -> float:
        from genimg_export.zoo import data

        h, w = size or self.lr_size
        hr = np.stack([_centre_crop(img, h * self.scale, w * self.scale) for img in data.photos("held_out")])
        sr = run({self.input: data.downscale(hr, self.scale)})[self.output]
        return float(np.mean([data.psnr(data.luma(np.clip(s, -1, 1)), data.luma(t)) for s, t in zip(sr, hr)]))


def for_spec(spec):
    """The task metric of ``spec``, or None where none applies."""
    if spec.extra.get("task_metric") is not None:
        return spec.extra["task_metric"]
    sig = spec.default_signature
    images_in = [t for t in sig.inputs if t.is_image]
    images_out = [t for t in sig.outputs if t.is_image]
    if spec.scale > 1 and len(sig.inputs) == 1 and images_in and images_out and images_in[0].shape[-1] == 3:
        return SuperResolution(spec.scale, images_in[0].name, images_out[0].name)
    return None


def applies_to(backend: str, variant: str | None) -> bool:
    """Quantized and reduced-precision variants (not float ones, not the Keras reference)."""
    from genimg_export.artifacts.formats import find_variant

    found = find_variant(backend, variant)
    return found is not None and found.reduced_precision


def _centre_crop(img: np.ndarray, h: int, w: int) -> np.ndarray:
    y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[y : y + h, x : x + w]
