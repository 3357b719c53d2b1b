"""``genimg-export generate``: run a Keras model on seeded latents or an image file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from genimg_export.errors import InvalidInputError
from genimg_export.zoo.spec import ModelSpec


def generate(spec: ModelSpec, model, output: Path, image: Path | None, count: int, class_id: int | None,
             seed: int, out_dir: Path | None) -> list[Path]:
    """Write a sample grid (generators) or the transformed image; return the paths written."""
    sig = spec.default_signature
    x = check(spec, output, image, count, class_id)
    if x is not None:
        return [_transform(spec, model, x, output)]
    inputs = spec.sample_inputs(count, seed)
    if class_id is not None:
        inputs["label"] = np.full(count, class_id, np.int32)
    images = np.asarray(sig.call(model, inputs)[sig.outputs[0].name])
    return _write_samples(images, inputs.get("label"), output, out_dir)


def check(spec: ModelSpec, output: Path, image: Path | None, count: int, class_id: int | None) -> np.ndarray | None:
    """Every check of a ``generate`` request that needs no model, so the CLI runs it before
    TensorFlow loads the model (a bad --input answers at once). Returns the input image, if any."""
    from genimg_export.fs import check_output_file

    check_output_file(output, "--output")
    if spec.default_signature.inputs[0].is_image:
        if image is None:
            raise InvalidInputError(f"model '{spec.name}' transforms an image: pass --input IMAGE")
        return _load(spec, image)
    if image is not None:
        raise InvalidInputError(f"model '{spec.name}' generates from latents; --input is for image models")
    if count <= 0:
        raise InvalidInputError(f"--count must be at least 1, got {count}")
    if class_id is not None:
        if not any(t.name == "label" for t in spec.default_signature.inputs):  # cgan's class input
            raise InvalidInputError(f"--class-id applies to the conditional model (cgan), not '{spec.name}'")
        if not 0 <= class_id <= 9:
            raise InvalidInputError(f"--class-id must be a digit class 0-9, got {class_id}")
    return None


def _load(spec: ModelSpec, path: Path) -> np.ndarray:
    from genimg_edge.images import ImageError, load_image

    try:
        return load_image(path, channels=spec.default_signature.inputs[0].shape[-1])
    except ImageError as e:
        raise InvalidInputError(str(e)) from e


def _transform(spec: ModelSpec, model, x: np.ndarray, output: Path) -> Path:
    sig = spec.default_signature
    padded, (h, w) = pad_to_multiple(x, spec.spatial_multiple)
    y = np.asarray(sig.call(model, {sig.inputs[0].name: padded[None]})[sig.outputs[0].name])[0]
    y = y[: h * spec.scale, : w * spec.scale]
    return _save(output, y)


def pad_to_multiple(image: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad (H, W, C) so H and W are multiples of ``multiple``; return it and (H, W)."""
    h, w = image.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode=mode), (h, w)


def _save(path: Path, image: np.ndarray) -> Path:
    from genimg_edge.images import ImageError, save_image

    try:
        return save_image(path, image)
    except ImageError as e:
        raise InvalidInputError(str(e)) from e
    except OSError as e:
        raise InvalidInputError(f"cannot write {path}: {e.strerror}") from e


def _write_samples(images: np.ndarray, labels, output: Path, out_dir: Path | None) -> list[Path]:
    from genimg_edge.images import grid
    from genimg_export.fs import check_out_dir

    written = [_save(output, grid(images))]
    if out_dir is not None:
        out_dir = check_out_dir(out_dir)
        for i, img in enumerate(images):
            written.append(_save(out_dir / f"sample_{i:04d}.png", img))
        if labels is not None:
            with open(out_dir / "labels.csv", "w", newline="") as f:
                rows = csv.writer(f)
                rows.writerow(["file", "label"])
                rows.writerows((f"sample_{i:04d}.png", int(lab)) for i, lab in enumerate(labels))
            written.append(out_dir / "labels.csv")
    return written
