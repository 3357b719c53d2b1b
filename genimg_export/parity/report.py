"""The parity contact sheet: a PNG a person can look at.

One section per output (failing ones first). Its top row: the input (if it
is an image) and the reference (Keras or SavedModel) for a few samples;
non-image outputs (scores, vectors, latents) are drawn as a strip of their
values. Then one row per backend: its output and a heatmap of |output -
reference| on a log scale shared by all rows (black = 1e-6 or less, white =
1), so an fp32 row is near black and a broken one lights up.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from genimg_export.errors import InvalidInputError

LABEL_W, GAP, MIN_CELL = 190, 6, 96
LOG_LO, LOG_HI = -6.0, 0.0  # heatmap range in log10 |difference|
# magma-like colour stops for the heatmap, 0 -> 1
STOPS = np.array([[0, 0, 4], [80, 18, 123], [183, 55, 121], [252, 137, 97], [252, 253, 191]], np.float32)


def write_contact_sheet(result, path: Path) -> Path:
    """Draw ``result.pictures`` (see parity.run) into ``path`` (PNG), atomically:
    one section per output, outputs with a failing row first."""
    from PIL import Image, ImageDraw

    check_path(path)
    sections = _sections(result)
    if not sections:
        raise InvalidInputError(f"model '{result.model}' has no output to draw; drop --report")
    n = max(len(pics["reference"]) for _, pics in sections)
    cells = [_cell_size(pics["reference"]) for _, pics in sections]
    width = LABEL_W + n * 2 * (max(w for _, w in cells) + GAP) + GAP
    height = sum(24 + (1 + len(p["rows"])) * (h + GAP) for (_, p), (h, _) in zip(sections, cells)) + 28 + 50
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((GAP, 6), _title(result), fill=(0, 0, 0), font=_font(14))
    y = 28
    for (name, pics), (cell_h, cell_w) in zip(sections, cells):
        y = _draw_section(sheet, draw, result, name, pics, y, cell_h, cell_w)
    _legend(sheet, draw, y + 8)
    return _save(sheet, Path(path))


def _sections(result) -> list:
    """(output name, pictures) with a reference, failing outputs first (stable otherwise)."""
    failing = {r.output for r in result.rows if not r.passed}
    found = [(name, p) for name, p in result.pictures.items() if p.get("reference") is not None]
    return sorted(found, key=lambda item: item[0] not in failing)


def _cell_size(ref: np.ndarray) -> tuple[int, int]:
    shape = _display(ref[0], 0.0, 1.0).shape
    factor = max(1, math.ceil(MIN_CELL / max(shape[:2])))
    return min(shape[0] * factor, 4 * MIN_CELL), min(shape[1] * factor, 4 * MIN_CELL)


def _draw_section(sheet, draw, result, name: str, pics: dict, y: int, cell_h: int, cell_w: int) -> int:
    ref = pics["reference"]
    lo, hi = float(np.min(ref)), float(np.max(ref))
    failed = any(not r.passed for r in result.rows if r.output == name)
    draw.text((GAP, y + 4), f"output '{name}'{'  (FAILING)' if failed else ''}", fill=(0, 0, 0), font=_font(13))
    y += 24
    rows = [("reference", pics.get("input"), ref, None)]
    rows += [(label, p["output"], None, _heat(p["output"], p["reference"])) for label, p in pics["rows"].items()]
    for label, first, second, heat in rows:
        text = _row_text(result, label, name)
        own = pics["rows"].get(label, {}).get("size")
        if own is not None and own != pics.get("size"):
            text += f"\n(fixed size {own[0]}x{own[1]})"
        draw.text((GAP, y + 4), text, fill=(0, 0, 0), font=_font(12))
        for i in range(len(ref)):
            x = LABEL_W + i * 2 * (cell_w + GAP)
            if first is not None and i < len(first):
                own_range = (lo, hi) if label != "reference" else (float(np.min(first)), float(np.max(first)))
                sheet.paste(_tile(_display(first[i], *own_range), cell_h, cell_w), (x, y))
            right = _display(second[i], lo, hi) if second is not None else heat[i]
            sheet.paste(_tile(right, cell_h, cell_w, colour=second is None), (x + cell_w + GAP, y))
        y += cell_h + GAP
    return y


def _display(sample: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """One sample as an (H, W, C) image in [-1, 1] for drawing: images as they are,
    other outputs (scores, vectors, latents) as a strip of their first 64 values;
    values mapped from [lo, hi] (the reference's span)."""
    arr = np.asarray(sample, np.float64)
    if not (arr.ndim == 3 and arr.shape[-1] in (1, 3)):
        arr = arr.ravel()[:64].reshape(1, -1, 1)
    scale = hi - lo if hi > lo else 1.0
    return np.clip((arr - lo) / scale * 2.0 - 1.0, -1.0, 1.0)


def _title(result) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    reference = "SavedModel" if getattr(result, "reference", "keras") == "saved_model" else "Keras"
    return f"{result.model}: parity vs {reference}, {verdict}  (per sample: output | log |diff|)"


def _row_text(result, label: str, output: str) -> str:
    if label == "reference":
        reference = "SavedModel" if getattr(result, "reference", "keras") == "saved_model" else "Keras"
        return f"{reference} reference\n(input | output)"
    row = next((r for r in result.rows if r.label == label and r.output == output), None)
    if row is None or row.max_abs is None:
        return label
    psnr = "exact" if row.psnr_db == math.inf else f"{row.psnr_db:.1f} dB"
    ssim = "" if row.ssim is None else f"\nSSIM {row.ssim:.4f}"
    verdict = "pass" if row.passed else "FAIL"
    return f"{label}  {verdict}\nmax |diff| {row.max_abs:.2g}\nPSNR {psnr}{ssim}"


def _heat(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|out - ref| (max over channels; a strip for non-image outputs) on the shared log scale, in [0, 1]."""
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    image = diff.ndim == 4 and diff.shape[-1] in (1, 3)
    diff = diff.max(axis=-1) if image else diff.reshape(len(diff), -1)[:, None, :64]
    diff = np.nan_to_num(diff, nan=1.0, posinf=1.0)
    return np.clip((np.log10(diff + 1e-12) - LOG_LO) / (LOG_HI - LOG_LO), 0.0, 1.0)


def _colour(values: np.ndarray) -> np.ndarray:
    pos = values * (len(STOPS) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(STOPS) - 2)
    frac = (pos - lo)[..., None]
    return ((1 - frac) * STOPS[lo] + frac * STOPS[lo + 1]).astype(np.uint8)


def _tile(arr: np.ndarray, h: int, w: int, colour: bool = False):
    from PIL import Image

    from genimg_edge.images import to_uint8

    if colour:
        pixels = _colour(arr)
    else:
        pixels = to_uint8(arr)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
    img = Image.fromarray(pixels)
    shrink = img.width > w or img.height > h
    return img.resize((w, h), Image.BILINEAR if shrink else Image.NEAREST)


def _legend(sheet, draw, y: int) -> None:
    from PIL import Image

    bar = _colour(np.tile(np.linspace(0, 1, 300), (12, 1)))
    sheet.paste(Image.fromarray(bar), (LABEL_W, y))
    draw.text((GAP, y - 2), "|diff| (log scale)", fill=(0, 0, 0), font=_font(12))
    for k in range(int(LOG_HI - LOG_LO) + 1):
        x = LABEL_W + int(k / (LOG_HI - LOG_LO) * 299)
        draw.text((x - 8, y + 14), f"1e{int(LOG_LO) + k}", fill=(0, 0, 0), font=_font(11))


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def check_path(path: Path) -> Path:
    """Refuse a report path that cannot be written, before any work is done."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidInputError(f"--report must name a .png file (e.g. parity.png), got {path}")
    if not path.parent.is_dir():
        raise InvalidInputError(f"cannot write {path}: no such directory {path.parent}")
    return path


def _save(sheet, path: Path) -> Path:
    from genimg_export import fs

    with fs.atomic_path(path) as tmp:  # its cleanup never raises (a read-only folder)
        sheet.save(tmp, format="PNG")
    return path
