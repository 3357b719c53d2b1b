"""Tiled inference: run an image-to-image model on big images in bounded memory.

The image is cut into core tiles; each is run inside a window with ``overlap``
extra pixels of context on every side (clamped at the image border), and only
the core's part of the output is kept. Where the overlap covers the network's
receptive field the result equals the untiled one; beyond it the seam error
is what the receptive field's tail contributes (measured in the tests).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genimg_edge.errors import EdgeError

Span = tuple[int, int, int, int]  # core start, core end, window start, window end


def tiled(
    fn: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile: int | None = None,
    overlap: int = 24,
    multiple: int = 1,
    window: tuple[int, int] | None = None,
    post: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Apply ``fn`` ((1, h, w, C) -> (1, s*h, s*w, C')) to an (H, W, C) image, tile by tile.

    Args:
        tile: core tile side in input pixels; None runs the whole image at once
            (unless ``window`` forces a size).
        overlap: context pixels on each side of a tile, cropped from the output.
        multiple: H and W the model accepts must be multiples of this; the
            image is edge-padded to one and the padding cropped from the output.
        window: the exact (h, w) a fixed-size model accepts; tiles are cut to it.
        post: elementwise map applied to each output tile before it is stored
            (e.g. to uint8 pixels, so a 2048x2048 x4 upscale keeps 200 MB of
            output, not 800 MB of float32 plus temporaries).
    """
    post = post or (lambda y: y)
    if tile is not None and tile < 1:
        raise EdgeError(f"tile must be at least 1 pixel, got {tile}")
    if overlap < 0:
        raise EdgeError(f"overlap must be 0 or more, got {overlap}")
    h, w = image.shape[:2]
    if window is None:
        padded = _pad(image, _round_up(h, multiple), _round_up(w, multiple))
        if tile is None:
            out = fn(padded[None])[0]
            s = _scale(out.shape, padded.shape)
            return post(out[: h * s, : w * s])
        core, margin = _round_up(tile, multiple), _round_up(overlap, multiple)
        ys = _spans(padded.shape[0], core, margin)
        xs = _spans(padded.shape[1], core, margin)
    else:
        padded = _pad(image, max(h, window[0]), max(w, window[1]))
        ys = _fixed_spans(padded.shape[0], window[0], tile, overlap)
        xs = _fixed_spans(padded.shape[1], window[1], tile, overlap)
    canvas, s = _run_tiles(fn, padded, ys, xs, post)
    return canvas[: h * s, : w * s]


def _run_tiles(fn, padded: np.ndarray, ys: list[Span], xs: list[Span], post) -> tuple[np.ndarray, int]:
    canvas, s = None, 1
    for cy0, cy1, wy0, wy1 in ys:
        for cx0, cx1, wx0, wx1 in xs:
            out = fn(padded[None, wy0:wy1, wx0:wx1])[0]
            if canvas is None:
                s = _scale(out.shape, (wy1 - wy0, wx1 - wx0))
            elif out.shape[:2] != ((wy1 - wy0) * s, (wx1 - wx0) * s):
                raise EdgeError(f"the model's output size changed between tiles ({out.shape[:2]}); cannot tile it")
            core = post(out[(cy0 - wy0) * s : (cy1 - wy0) * s, (cx0 - wx0) * s : (cx1 - wx0) * s])
            if canvas is None:
                canvas = np.empty((padded.shape[0] * s, padded.shape[1] * s, core.shape[-1]), core.dtype)
            canvas[cy0 * s : cy1 * s, cx0 * s : cx1 * s] = core
    return canvas, s


def _spans(n: int, core: int, margin: int) -> list[Span]:
    """Core tiles of ``core`` pixels, windows grown by ``margin`` and clamped to [0, n)."""
    return [(c0, min(c0 + core, n), max(0, c0 - margin), min(n, c0 + core + margin)) for c0 in range(0, n, core)]


def _fixed_spans(n: int, win: int, tile: int | None, overlap: int) -> list[Span]:
    """Windows of exactly ``win`` pixels (n >= win) whose centres cover [0, n)."""
    margin = min(overlap, win // 4)
    core = min(tile or win, win - 2 * margin)
    if n == win:
        return [(0, n, 0, n)]
    spans = []
    for c0 in range(0, n, core):
        w0 = min(max(0, c0 - margin), n - win)
        spans.append((c0, min(c0 + core, n), w0, w0 + win))
    return spans


def _scale(out_shape, in_shape) -> int:
    """The whole-number factor from input to output H and W (4 for srgan)."""
    sy, ry = divmod(out_shape[0], in_shape[0])
    sx, rx = divmod(out_shape[1], in_shape[1])
    if ry or rx or sy != sx or sy < 1:
        raise EdgeError(
            f"cannot tile a model whose output ({out_shape[0]}x{out_shape[1]}) is not a whole"
            f" multiple of its input ({in_shape[0]}x{in_shape[1]})"
        )
    return sy


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _pad(image: np.ndarray, h: int, w: int) -> np.ndarray:
    if (h, w) == image.shape[:2]:
        return image
    return np.pad(image, ((0, h - image.shape[0]), (0, w - image.shape[1]), (0, 0)), mode="edge")
