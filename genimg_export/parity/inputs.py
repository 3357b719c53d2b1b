"""Inputs for a parity run: the same seeded samples for every runner.

Where they come from, first match wins:
1. ``--samples-npz`` (keys = input names), as given;
2. a zoo model's own ``spec.sample_inputs`` (real data where the task has it);
3. for a user's model, the calibration data recorded with the export
   (images resized to each checked size);
4. else uniform random values: image inputs in ``--input-range``, other
   inputs (class vectors, latents) in [-1, 1] unless their range is declared.

Models with dynamic H x W are checked at two sizes, one of them non-square,
both multiples of ``spec.spatial_multiple``; an export made at a fixed size is
checked at that size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from genimg_export.errors import InvalidInputError

MIN_SAMPLES = 8
BASE_SIDE = 16  # smallest side of the checked sizes: tiny, so parity stays fast


def spatial_sizes(multiple: int, base: int = BASE_SIDE) -> list[tuple[int, int]]:
    """Two (H, W) sizes, square and non-square, multiples of ``multiple``, the smaller side ``base`` or more.

    >>> spatial_sizes(1), spatial_sizes(32), spatial_sizes(4, 48)
    ([(16, 16), (16, 24)], [(32, 32), (32, 64)], [(48, 48), (48, 56)])
    """
    side = math.ceil(base / multiple) * multiple
    return [(side, side), (side, side + math.ceil(8 / multiple) * multiple)]


class InputPlan:
    """Inputs per (signature, size), made on first use and then reused.

    Args:
        spec: the ModelSpec.
        samples: samples per size (at least 8).
        seed: seed of the samples.
        npz: arrays keyed by input name (``--samples-npz``), used as given.
        recorded: calibration arrays recorded with the export (user models).
        input_range: (low, high) for random inputs of a user's model.
    """

    def __init__(self, spec, samples: int = MIN_SAMPLES, seed: int = 0, npz: dict | None = None,
                 recorded: dict | None = None, input_range: tuple[float, float] = (-1.0, 1.0)):
        if npz is None and samples < MIN_SAMPLES:
            raise InvalidInputError(
                f"--samples must be at least {MIN_SAMPLES} (a batch > 1, several batches), got {samples}"
            )
        if input_range[1] <= input_range[0]:
            raise InvalidInputError(
                f"--input-range must be LOW,HIGH with LOW < HIGH (e.g. -1,1), got {list(input_range)}"
            )
        self.spec, self.samples, self.seed = spec, samples, seed
        self.npz, self.recorded, self.input_range = npz, recorded, input_range
        self._cache: dict = {}
        if npz is not None:
            self.samples = _check_npz(spec, npz)

    def covers(self, signature: str) -> bool:
        """False for a signature whose inputs ``--samples-npz`` does not hold."""
        names = [t.name for t in self.spec.signature(signature).inputs]
        return self.npz is None or all(n in self.npz for n in names)

    def sizes(self, signature: str) -> list:
        """The size keys of a signature: (H, W) pairs, or [None] when not spatial or given."""
        sig = self.spec.signature(signature)
        if self.npz is not None or not any(t.dynamic_spatial for t in sig.inputs):
            return [None]
        return spatial_sizes(self.spec.spatial_multiple, self.spec.parity_side or BASE_SIDE)

    def sizes_for(self, target) -> list:
        if target.fixed_size and self.npz is None and self.sizes(target.signature) != [None]:
            return [tuple(target.fixed_size)]
        return self.sizes(target.signature)

    def first_size(self, signature: str):
        return self.sizes(signature)[0]

    def describe_sizes(self) -> list:
        return [list(s) for s in self.sizes(self.spec.default_signature.name) if s is not None]

    def inputs(self, signature: str, size) -> dict[str, np.ndarray]:
        key = (signature, size)
        if key not in self._cache:
            self._cache[key] = self._make(signature, size)
        return self._cache[key]

    def image_input(self, sig, size, count: int):
        """The first ``count`` samples of the signature's image input, or None."""
        image = next((t for t in sig.inputs if t.is_image), None)
        return None if image is None else self.inputs(sig.name, size)[image.name][:count]

    def _make(self, signature: str, size) -> dict[str, np.ndarray]:
        sig = self.spec.signature(signature)
        if self.npz is not None:
            return {t.name: np.asarray(self.npz[t.name]) for t in sig.inputs}
        if self.spec.source is None:
            return self.spec.sample_inputs(self.samples, self.seed, signature, size)
        if self.recorded is not None and all(t.name in self.recorded for t in sig.inputs):
            return {t.name: _at_size(t, np.asarray(self.recorded[t.name])[: self.samples], size) for t in sig.inputs}
        rng = np.random.default_rng(self.seed)
        return {t.name: _random(t, self.samples, size, self.input_range, rng) for t in sig.inputs}


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file, keyed by name; one clear error when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such file: {path} (expected an .npz written by numpy.savez, keys = input names)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{path} is not a readable .npz file ({e})") from e


def _check_npz(spec, npz: dict) -> int:
    names = [t.name for t in spec.default_signature.inputs]
    missing = [n for n in names if n not in npz]
    if missing:
        raise InvalidInputError(
            f"--samples-npz has keys {sorted(npz)}; it needs the inputs {names} (missing {missing})"
        )
    for t in spec.default_signature.inputs:
        got = np.shape(npz[t.name])
        if len(got) != len(t.shape) + 1 or any(d is not None and d != g for d, g in zip(t.shape, got[1:])):
            want = ", ".join("any" if d is None else str(d) for d in t.shape)
            raise InvalidInputError(f"--samples-npz: '{t.name}' has shape {list(got)}; expected [N, {want}]")
    counts = {len(np.asarray(npz[n])) for n in names}
    if len(counts) != 1:
        raise InvalidInputError(f"--samples-npz arrays must all have the same number of samples, got {sorted(counts)}")
    return counts.pop()


def _random(tensor, n: int, size, input_range, rng) -> np.ndarray:
    dims = list(tensor.shape)
    if tensor.dynamic_spatial and size is not None:
        dims[0], dims[1] = size
    if any(d is None for d in dims):
        raise InvalidInputError(
            f"input '{tensor.name}' has dynamic dims {tensor.shape};"
            " pass --samples-npz with arrays of the sizes to check"
        )
    # --input-range is the range of image inputs; class vectors and latents keep [-1, 1]
    lo, hi = tensor.value_range or (input_range if tensor.is_image else (-1.0, 1.0))
    if np.issubdtype(np.dtype(tensor.dtype), np.integer):
        return rng.integers(max(int(lo), 0), max(int(hi), 0) + 1, size=(n, *dims)).astype(tensor.dtype)
    return rng.uniform(lo, hi, size=(n, *dims)).astype(tensor.dtype)


def _at_size(tensor, values: np.ndarray, size) -> np.ndarray:
    """Recorded images resized to the size being checked (a fixed-size export's
    own size, or the two checked sizes); other inputs as they are."""
    if size is None or not tensor.dynamic_spatial or tuple(values.shape[1:3]) == tuple(size):
        return values
    rows = np.arange(size[0]) * values.shape[1] // size[0]  # nearest neighbour: keeps the value range
    cols = np.arange(size[1]) * values.shape[2] // size[1]
    return np.ascontiguousarray(values[:, rows][:, :, cols])
