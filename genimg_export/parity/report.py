"""The parity contact sheet: a PNG a person can look at.

Top row: the input (if it is an image) and the Keras reference for a few
samples. Then one row per backend: its output and a heatmap of |output -
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
    """Draw ``result.pictures`` (see parity.check) into ``path`` (PNG), atomically."""
    from PIL import Image, ImageDraw

    pics = result.pictures
    check_path(path)
    if pics.get("reference") is None:
        raise InvalidInputError(f"model '{result.model}' has no image output to draw; drop --report")
    ref = pics["reference"]
    factor = max(1, math.ceil(MIN_CELL / max(ref.shape[1:3])))
    cell_h, cell_w = ref.shape[1] * factor, ref.shape[2] * factor
    n = len(ref)
    rows = [("reference", pics.get("input"), ref, None)]
    rows += [(label, p["output"], None, _heat(p["output"], p["reference"])) for label, p in pics["outputs"].items()]
    width = LABEL_W + n * 2 * (cell_w + GAP) + GAP
    height = 28 + len(rows) * (cell_h + GAP) + 50
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((GAP, 6), _title(result, pics), fill=(0, 0, 0), font=_font(14))
    y = 28
    for label, first, second, heat in rows:
        text = _row_text(result, label, pics["output"])
        own = pics["outputs"].get(label, {}).get("size")
        if own is not None and own != pics.get("size"):
            text += f"\n(fixed size {own[0]}x{own[1]})"
        draw.text((GAP, y + 4), text, fill=(0, 0, 0), font=_font(12))
        for i in range(n):
            x = LABEL_W + i * 2 * (cell_w + GAP)
            if first is not None:
                sheet.paste(_tile(first[i], cell_h, cell_w), (x, y))
            right = second[i] if second is not None else heat[i]
            sheet.paste(_tile(right, cell_h, cell_w, colour=second is None), (x + cell_w + GAP, y))
        y += cell_h + GAP
    _legend(sheet, draw, y + 8)
    return _save(sheet, Path(path))


def _title(result, pics) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    return f"{result.model}: parity of '{pics['output']}' vs Keras, {verdict}  (per sample: output | log |diff|)"


def _row_text(result, label: str, output: str) -> str:
    if label == "reference":
        return "Keras reference\n(input | output)"
    row = next((r for r in result.rows if r.label == label and r.output == output), None)
    if row is None or row.max_abs is None:
        return label
    psnr = "exact" if row.psnr_db == math.inf else f"{row.psnr_db:.1f} dB"
    ssim = "" if row.ssim is None else f"\nSSIM {row.ssim:.4f}"
    verdict = "pass" if row.passed else "FAIL"
    return f"{label}  {verdict}\nmax |diff| {row.max_abs:.2g}\nPSNR {psnr}{ssim}"


def _heat(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|out - ref| (max over channels) on the shared log scale, in [0, 1]."""
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64)).max(axis=-1)
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
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        sheet.save(tmp, format="PNG")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
