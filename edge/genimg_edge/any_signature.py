"""Running any signature from files: ``--input NAME=FILE`` for each input (an image
or a ``.npy`` array), every output written (``.npz``, or one PNG per image output).

Example (an image + a class vector in; an image, a mask and a score out)::

    feeds = read_inputs(model, ["image=photo.png", "class_vector=onehot.npy"], "serving_default")
    written = write_outputs(model, Path("out.png"), model.run(feeds), "serving_default")
    # -> out.restored.png, out.mask.png, out.outputs.npz (the score)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genimg_edge import images
from genimg_edge.errors import EdgeError
from genimg_edge.model import EdgeModel, Port, from_model_range, to_model_range

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def describe_inputs(model: EdgeModel, signature: str) -> str:
    return ", ".join(p.describe() for p in model.inputs(signature))


def given_inputs(model: EdgeModel, items: list, signature: str) -> dict[str, Path]:
    """``NAME=FILE`` (or a bare FILE for the one image input) -> {input name: path}."""
    ports = {p.name: p for p in model.inputs(signature)}
    images_in = [p.name for p in ports.values() if p.is_image]
    given: dict[str, Path] = {}
    for item in items or []:
        name, sep, file = str(item).partition("=")
        if not sep:
            if len(images_in) != 1:
                raise EdgeError(f"--input {item}: say which input it is, as --input NAME=FILE;"
                                f" signature '{signature}' takes {describe_inputs(model, signature)}")
            name, file = images_in[0], str(item)
        if name not in ports:
            raise EdgeError(f"--input {item}: signature '{signature}' has no input '{name}';"
                            f" it takes {describe_inputs(model, signature)}")
        given[name] = Path(file)
    return given


def read_inputs(model: EdgeModel, items: list, signature: str, seed: int = 0, count: int = 1,
                label: int | None = None, max_pixels: int = images.DEFAULT_MAX_PIXELS) -> dict[str, np.ndarray]:
    """Every input of the signature: the given files, and for inputs not given that are
    not images, latents drawn from ``seed`` / labels (as ``EdgeModel.generate`` does)."""
    given = given_inputs(model, items, signature)
    feeds = {name: read_input(path, _port(model, signature, name), max_pixels, model.meta is not None)
             for name, path in given.items()}
    missing = [p for p in model.inputs(signature) if p.name not in feeds]
    if any(p.is_image for p in missing):
        names = ", ".join(f"{p.name}=FILE" for p in missing if p.is_image)
        raise EdgeError(f"signature '{signature}' takes {describe_inputs(model, signature)}; pass --input {names}")
    if missing:
        batch = len(next(iter(feeds.values()))) if feeds else count
        drawn = model.generator_inputs(seed, batch, label, signature, only=[p.name for p in missing])
        feeds.update(drawn)
    return feeds


def _port(model: EdgeModel, signature: str, name: str) -> Port:
    return next(p for p in model.inputs(signature) if p.name == name)


def read_input(path: Path, port: Port, max_pixels: int, has_metadata: bool = False) -> np.ndarray:
    """An image file (into the port's value range) or a .npy array, with a batch dim."""
    if path.suffix.lower() == ".npy":
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EdgeError(f"--input {port.name}={path}: not a readable .npy file ({e})") from e
        return value[None] if value.ndim == len(port.shape) - 1 else value
    if not port.is_image:
        raise EdgeError(f"--input {port.name}={path}: '{port.name}' is not an image ({port.describe()});"
                        " give a .npy array (numpy.save)")
    if port.shape[-1] not in (1, 3):
        raise EdgeError(f"input '{port.name}' takes {port.shape[-1]} channels; image files give 1 or 3: use .npy")
    image = images.load_image(path, port.shape[-1], max_pixels)
    return to_model_range(image, port.value_range, port.name, has_metadata)[None]


def output_paths(model: EdgeModel, out: Path, signature: str) -> dict[str, Path]:
    """Where each output goes for an image ``out``: OUT itself for a single image output,
    else OUT.<name>.png per image output and OUT.outputs.npz for the others."""
    ports = model.outputs(signature)
    drawable = [p for p in ports if p.is_image and p.shape[-1] in (1, 3)]
    if len(ports) == 1 and drawable:
        return {drawable[0].name: out}
    paths = {p.name: out.with_name(f"{out.stem}.{p.name}{out.suffix}") for p in drawable}
    rest = [p.name for p in ports if p.name not in paths]
    if rest:
        paths["*"] = out.with_name(f"{out.stem}.outputs.npz")
    return paths


def write_outputs(model: EdgeModel, out: Path, outputs: dict[str, np.ndarray], signature: str) -> list[Path]:
    """Write every output: all of them into ``out`` if it is .npz, else one image (a grid
    for a batch) per image output and the rest in OUT.outputs.npz. Ranges are checked
    before anything is written."""
    if out.suffix.lower() == ".npz":
        save_npz(out, outputs)
        return [out]
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise EdgeError(f"cannot write {out}: use one of {', '.join(IMAGE_SUFFIXES)} (or .npz for raw outputs)")
    paths = output_paths(model, out, signature)
    ports = {p.name: p for p in model.outputs(signature)}
    pictures = {name: from_model_range(outputs[name], ports[name].value_range, name, "--output-range",
                                       model.meta is not None)
                for name in paths if name != "*"}
    written = []
    for name, picture in pictures.items():
        written.append(images.save_image(paths[name], picture[0] if len(picture) == 1 else images.grid(picture)))
    if "*" in paths:
        save_npz(paths["*"], {k: v for k, v in outputs.items() if k not in pictures})
        written.append(paths["*"])
    return written


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        tmp.replace(path)
    except OSError as e:
        raise EdgeError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        tmp.unlink(missing_ok=True)
