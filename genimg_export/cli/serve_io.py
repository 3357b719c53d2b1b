"""Files in and out of ``genimg-export predict``: images and .npy/.npz arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genimg_export.errors import InvalidInputError, NotFoundError
from genimg_export.fs import check_output_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")


def check_output(path: Path | None) -> None:
    """Fail before calling the server when the output cannot be written."""
    if path is None:
        raise InvalidInputError("missing option --output FILE (e.g. --output out.png)")
    if path.suffix.lower() not in IMAGE_SUFFIXES + ARRAY_SUFFIXES:
        raise InvalidInputError(
            f"--output {path}: use an image name (.png, .jpg) or an array name (.npy, .npz)")
    if not path.parent.exists():
        raise NotFoundError(f"--output {path}: folder {path.parent} does not exist")
    check_output_file(path, "--output")


def read_inputs(specs: list[str], sig) -> dict[str, np.ndarray]:
    """``FILE`` (single-input signatures) or ``NAME=FILE`` items -> named batch arrays."""
    names = list(sig.inputs)
    inputs = {}
    for item in specs:
        name, _, file = item.rpartition("=") if "=" in item else ("", "", item)
        if not name:
            if len(names) != 1:
                raise InvalidInputError(
                    f"signature {sig.name} has inputs {names}: pass --input NAME=FILE for each")
            name = names[0]
        if name not in sig.inputs:
            raise InvalidInputError(f"--input {item}: signature {sig.name} has no input {name!r}; it has {names}")
        inputs[name] = _read(Path(file), sig.inputs[name])
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InvalidInputError(f"missing --input for {missing} (signature {sig.name} takes {names})")
    return inputs


def _read(path: Path, info) -> np.ndarray:
    if not path.is_file():
        raise NotFoundError(f"no such input file: {path}")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as e:
            raise InvalidInputError(f"{path} is not a readable .npy file ({e})") from e
    if not info.is_image:
        raise InvalidInputError(
            f"input {info.alias} is {info.dtype} {list(info.shape or [])}, not an image: pass a .npy file")
    from genimg_edge.images import ImageError, load_image

    try:
        return load_image(path, channels=info.shape[-1])[None]
    except ImageError as e:
        raise InvalidInputError(str(e)) from e


def generate(client, model: str, sig, *, n, seed, class_id, version, version_label):
    """No --input: draw latents (and a class) and run the generator."""
    if any(t.is_image for t in sig.inputs.values()):
        raise InvalidInputError(
            f"model {model} takes an image ({', '.join(sig.inputs)}): pass --input IMAGE")
    if n < 1:
        raise InvalidInputError(f"--n must be at least 1, got {n}")
    images = client.generate(model, n=n, seed=seed, class_id=class_id, signature=sig.name,
                             version=version, version_label=version_label)
    from genimg_serving.client import image_output

    return {image_output(model, sig): images}


def write_outputs(path: Path, outputs: dict[str, np.ndarray], sig) -> Path:
    """Write the image output as an image (a grid for N > 1), or arrays as .npy/.npz."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        np.savez(path, **outputs)
        return path
    images = [a for a in outputs if a in sig.outputs and sig.outputs[a].is_image]
    chosen = images[0] if images else next(iter(outputs))
    if suffix == ".npy":
        np.save(path, outputs[chosen])
        return path
    if not images:
        raise InvalidInputError(
            f"signature {sig.name} returns no image ({', '.join(outputs)}): use --output NAME.npz")
    from genimg_edge.images import grid, save_image

    batch = outputs[chosen]
    save_image(path, batch[0] if len(batch) == 1 else grid(batch))
    return path
