"""Error metrics between a backend's output and the Keras reference.

All take numpy arrays of equal shape; ``data_range`` is the width of the range
the values are meant to lie in (2 for images in [-1, 1]).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class Threshold:
    """The rule one output was judged by; written into every ``--json`` row.

    ``rule`` is "image" for image outputs (H x W x 1|3): max abs, PSNR and SSIM
    over ``data_range``, the width of the output's value range (else of the
    reference's values); ``range_from`` says which: "declared by the model",
    "recorded at export" (``export --output-range``), "--output-range" (given to
    parity) or "reference spread". A spec's ``max_abs`` is per
    [-1, 1] (DESIGN.md) and scales with the range. It is "abs_rel" for every
    other output (scores, masks of another shape, latents, vectors):
    ``max |out - ref| <= atol + rtol * max |ref|``, where a PSNR floor p gives
    atol = rtol = 10**(-p/20) and a ``max_abs`` m gives atol = rtol = m.
    """

    rule: str
    source: str  # "spec" or "--tolerance"
    data_range: float | None = None
    range_from: str | None = None
    max_abs: float | None = None
    min_psnr_db: float | None = None
    min_ssim: float | None = None
    atol: float | None = None
    rtol: float | None = None

    def allowed(self, peak: float) -> float | None:
        """The per-value error bound (for ``frac_outside``)."""
        if self.rule == "abs_rel":
            return self.atol + self.rtol * peak
        if self.max_abs is not None:
            return self.max_abs
        return allowed_error(None, self.min_psnr_db, self.data_range)

    def reasons(self, cmp: Comparison, peak: float) -> list[str]:
        """Why ``cmp`` fails this threshold (empty when it passes)."""
        if self.rule == "abs_rel":
            bound = self.atol + self.rtol * peak
            if cmp.max_abs <= bound:
                return []
            return [f"max abs {cmp.max_abs:.3g} > atol {self.atol:.3g} + rtol {self.rtol:.3g} x max|ref| {peak:.3g}"]
        reasons = []
        if self.max_abs is not None and not cmp.max_abs <= self.max_abs:
            reasons.append(f"max abs {cmp.max_abs:.3g} > {self.max_abs:.3g}")
        if self.min_psnr_db is not None and not cmp.psnr_db >= self.min_psnr_db:
            reasons.append(
                f"PSNR {cmp.psnr_db:.1f} dB < {self.min_psnr_db:g} dB (over a range of {self.data_range:.4g},"
                f" {self.range_from})")
        if self.min_ssim is not None and (cmp.ssim is None or not cmp.ssim >= self.min_ssim):
            reasons.append(f"SSIM {cmp.ssim} < {self.min_ssim:g}")
        return reasons

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


TOLERANCE_KEYS = {"max_abs": "max_abs", "psnr": "min_psnr_db", "ssim": "min_ssim", "atol": "atol", "rtol": "rtol"}


def threshold_for(tensor, tol, override: dict | None, reference: np.ndarray,
                  range_from: str | None = None) -> Threshold | None:
    """The threshold of one output: ``override`` (parsed ``--tolerance`` values) if
    given, else the spec's Tolerance ``tol``; None when there is neither. ``range_from``
    says where ``tensor.value_range`` came from (default: declared by the model)."""
    if override is None and tol is None:
        return None
    bounds = dict(override) if override is not None else {
        "max_abs": tol.max_abs, "min_psnr_db": tol.min_psnr_db, "min_ssim": tol.min_ssim}
    source = "--tolerance" if override is not None else "spec"
    if tensor.is_image:
        data_range = data_range_of(tensor.value_range, reference)
        max_abs = bounds.get("max_abs")
        if max_abs is not None and override is None:
            max_abs *= data_range / 2.0  # the house max_abs is per [-1, 1]
        came_from = (range_from or "declared by the model") if tensor.value_range else "reference spread"
        return Threshold("image", source, data_range, came_from,
                         max_abs, bounds.get("min_psnr_db"), bounds.get("min_ssim"))
    base = bounds.get("max_abs")
    if base is None and bounds.get("min_psnr_db") is not None:
        base = 10.0 ** (-bounds["min_psnr_db"] / 20.0)
    atol = bounds.get("atol", base if base is not None else 0.0)
    rtol = bounds.get("rtol", base if base is not None else 0.0)
    return Threshold("abs_rel", source, atol=atol, rtol=rtol)


def peak(references: list[np.ndarray]) -> float:
    """max |reference| over all batches (0 when empty)."""
    values = [float(np.max(np.abs(r))) for r in references if np.size(r)]
    return max(values, default=0.0)


def parse_tolerances(items: list[str] | None, labels: list[str]) -> dict[str, dict]:
    """``--tolerance LABEL=KEY:VALUE[,KEY:VALUE]`` options -> {label: {bound: value}}.

    ``labels`` are the known backend/variant labels (e.g. tflite/int8). Keys:
    psnr (dB floor), ssim (floor), max_abs, atol and rtol (for non-image outputs).

    >>> parse_tolerances(["tflite/int8=psnr:25,ssim:0.9"], ["tflite/int8"])
    {'tflite/int8': {'min_psnr_db': 25.0, 'min_ssim': 0.9}}
    """
    from genimg_export.errors import InvalidInputError, did_you_mean

    example = "e.g. --tolerance tflite/int8=psnr:25 or --tolerance onnx/fp32=max_abs:1e-3,atol:1e-3"
    table: dict[str, dict] = {}
    for item in items or []:
        label, sep, spec = item.partition("=")
        label = label.strip()
        if not sep or not spec.strip():
            raise InvalidInputError(f"--tolerance '{item}' must be BACKEND/VARIANT=KEY:VALUE[,KEY:VALUE] ({example})")
        if label not in labels:
            raise InvalidInputError(
                f"--tolerance '{item}': no variant '{label}'{did_you_mean(label, labels)}; known: {', '.join(labels)}")
        table[label] = _bounds(item, spec, example)
    return table


def _bounds(item: str, spec: str, example: str) -> dict:
    from genimg_export.errors import InvalidInputError

    bounds = {}
    for part in spec.split(","):
        key, sep, value = part.strip().partition(":")
        if key not in TOLERANCE_KEYS or not sep:
            raise InvalidInputError(
                f"--tolerance '{item}': '{part.strip()}' is not KEY:VALUE with KEY one of"
                f" {', '.join(TOLERANCE_KEYS)} ({example})")
        try:
            number = float(value)
        except ValueError:
            raise InvalidInputError(f"--tolerance '{item}': '{value}' is not a number ({example})") from None
        if not math.isfinite(number) or number < 0:
            raise InvalidInputError(f"--tolerance '{item}': {key} must be a finite number >= 0, got {value}")
        bounds[TOLERANCE_KEYS[key]] = number
    return bounds
