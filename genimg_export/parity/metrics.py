"""Error metrics between a backend's output and the Keras reference.

All take numpy arrays of equal shape; ``data_range`` is the width of the range
the values are meant to lie in (2 for images in [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genimg_export.zoo.data import psnr


@dataclass(frozen=True)
class Comparison:
    """How far ``actual`` is from ``reference``; None where a metric does not apply."""

    max_abs: float
    mean_abs: float
    psnr_db: float
    ssim: float | None
    frac_outside: float


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float | None:
    """Mean SSIM over a batch of (N, H, W, C) images; None when smaller than 7x7.

    Gaussian-weighted (sigma 1.5) as in Wang et al. 2004, via scikit-image.
    """
    from skimage.metrics import structural_similarity

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 4 or min(a.shape[1:3]) < 7:
        return None
    scores = [
        structural_similarity(x, y, data_range=data_range, channel_axis=-1, gaussian_weights=True, sigma=1.5)
        for x, y in zip(a, b)
    ]
    return float(np.mean(scores))


def allowed_error(max_abs: float | None, min_psnr_db: float | None, data_range: float) -> float | None:
    """The per-value error a tolerance allows: ``max_abs``, else the RMS error
    at the PSNR floor (``data_range / 10**(psnr/20)``)."""
    if max_abs is not None:
        return max_abs
    if min_psnr_db is not None:
        return data_range / 10.0 ** (min_psnr_db / 20.0)
    return None


def compare(
    references: list[np.ndarray], actuals: list[np.ndarray], data_range: float,
    allowed: float | None, image: bool,
) -> Comparison:
    """All metrics of one output over batches of possibly different sizes
    (same-shaped pairs). ``allowed`` is the per-value error bound used for
    ``frac_outside`` (see ``allowed_error``); ``image`` turns SSIM on."""
    ref = np.concatenate([np.ravel(r) for r in references]).astype(np.float64)
    act = np.concatenate([np.ravel(a) for a in actuals]).astype(np.float64)
    diff = np.abs(act - ref)
    if not diff.size:
        return Comparison(0.0, 0.0, float("inf"), None, 0.0)
    scores = [ssim(r, a, data_range) for r, a in zip(references, actuals)] if image else []
    scores = [s for s in scores if s is not None]
    return Comparison(
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        psnr_db=psnr(act, ref, data_range),
        ssim=float(np.mean(scores)) if scores else None,
        frac_outside=float(np.mean(diff > allowed)) if allowed is not None else 0.0,
    )


def data_range_of(value_range, reference: np.ndarray) -> float:
    """Width of the declared value range, else of the reference's values (at least 1e-6)."""
    if value_range is not None:
        return float(value_range[1] - value_range[0])
    ref = np.asarray(reference)
    return max(float(ref.max() - ref.min()), 1e-6) if ref.size else 1.0
