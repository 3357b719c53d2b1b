"""A user's own model as a ModelSpec: a ``.keras`` file or a SavedModel directory.

The signatures are read from the model (input/output names, dtypes, shapes);
for a model with dynamic H x W, the spatial multiple and the output scale are
found by running it at a few small sizes. Parity samples are drawn uniformly
in [-1, 1] for float inputs (the zoo's image convention). There is no
calibration data unless the user gives some (``with_calibration``), so int8
needs ``--calibration-npz`` or ``--calibration-dir``.

Example::

    spec = spec_from_path(Path("my_upscaler.keras"))
    spec = with_calibration(spec, npz=Path("calib.npz"))   # keys = input names
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from genimg_export.errors import InvalidInputError, NotFoundError, first_line
from genimg_export.zoo.keras_file import imported_custom_objects, load_keras
from genimg_export.zoo.spec import STANDARD_TOLERANCES, ModelSpec, Signature, TensorSpec

CANONICAL = (64, 64)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def spec_from_path(path: Path, allow_unsafe: bool = False) -> ModelSpec:
    """A spec for a .keras file or a SavedModel directory (signatures read from it)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no such model file or directory: {path}")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise InvalidInputError(
                f"{path} is a directory but not a SavedModel (no saved_model.pb); expected e.g."
                " serving/mymodel/1/ or a .keras file"
            )
        model, signatures = _from_saved_model(path)
    else:
        model = load_keras(path, allow_unsafe)
        signatures = (_keras_signature(model),)
    return _spec(path, model, signatures)


def _spec(path: Path, model, signatures: tuple[Signature, ...]) -> ModelSpec:
    from genimg_export.fs import sha256_path

    spec = ModelSpec(
        name=_model_name(path),
        task="user",
        description=f"user model from {path}",
        signatures=signatures,
        build=lambda: model,  # the loaded model itself: a user model has no recipe
        sample_inputs=_sampler(signatures),
        calibration_inputs=None,
        tolerances=dict(STANDARD_TOLERANCES),
        source=path,
        extra={"model": model, "source_sha256": sha256_path(path), "custom_objects": imported_custom_objects()},
    )
    if spec.dynamic_spatial:
        multiple, scale = probe_spatial(spec, model)
        spec = dataclasses.replace(spec, spatial_multiple=multiple, scale=scale, canonical_size=CANONICAL)
    return spec


def _model_name(path: Path) -> str:
    stem = path.parent.name if path.is_dir() and path.name.isdigit() else path.stem
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "model"


def _clean(name: str, fallback: str, used: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", name.split(":")[0])
    if not name or name.startswith("keras_tensor") or name in used:
        name = fallback if fallback not in used else f"{fallback}_{len(used)}"
    used.add(name)
    return name


def _keras_signature(model) -> Signature:
    used: set[str] = set()
    inputs = tuple(
        TensorSpec(_clean(t.name, "input", used), str(t.dtype), tuple(t.shape[1:])) for t in model.inputs
    )
    names = getattr(model, "output_names", None) or [t.name for t in model.outputs]
    used = set()
    outputs = tuple(
        TensorSpec(_clean(n, "output", used), str(t.dtype), tuple(t.shape[1:]), _activation_range(t))
        for n, t in zip(names, model.outputs)
    )
    return Signature("serving_default", inputs, outputs)


# Outputs whose last layer bounds them declare that range (parity compares images over it)
BOUNDED = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def _activation_range(tensor) -> tuple[float, float] | None:
    history = getattr(tensor, "_keras_history", None)
    layer = history[0] if history else None
    return BOUNDED.get(getattr(getattr(layer, "activation", None), "__name__", None))


class SavedModelFunctions:
    """A loaded SavedModel that ``Signature.call`` and the exporters can use like a Keras model:
    calling it runs ``serving_default``; ``get_layer(name)`` gives another signature."""

    def __init__(self, loaded, signatures: tuple[Signature, ...]):
        self.trackable = loaded  # what ExportArchive tracks (the variables)
        self._fns = {s.name: _SignatureFn(loaded.signatures[s.name], s) for s in signatures}

    def __call__(self, x, training: bool = False):
        return self._fns["serving_default"](x)

    def get_layer(self, name: str):
        return self._fns[name]


class _SignatureFn:
    def __init__(self, fn, sig: Signature):
        self.fn, self.sig = fn, sig

    def __call__(self, x, training: bool = False):
        import tensorflow as tf

        args = x if isinstance(x, (list, tuple)) else [x]
        feed = {t.name: tf.convert_to_tensor(a, tf.as_dtype(t.dtype)) for t, a in zip(self.sig.inputs, args)}
        out = self.fn(**feed)
        return [out[t.name] for t in self.sig.outputs]


def _from_saved_model(path: Path):
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:
        raise InvalidInputError(f"cannot load SavedModel {path}: {first_line(e)}") from e
    names = sorted(loaded.signatures, key=lambda n: (n != "serving_default", n))
    if "serving_default" not in names:
        raise InvalidInputError(f"SavedModel {path} has no 'serving_default' signature; it has: {names or 'none'}")
    signatures = tuple(_saved_signature(n, loaded.signatures[n]) for n in names)
    return SavedModelFunctions(loaded, signatures), signatures


def _saved_signature(name: str, fn) -> Signature:
    specs = fn.structured_input_signature[1]
    outs = fn.structured_outputs
    inputs = tuple(TensorSpec(k, specs[k].dtype.name, tuple(specs[k].shape[1:])) for k in sorted(specs))
    outputs = tuple(TensorSpec(k, outs[k].dtype.name, tuple(outs[k].shape[1:])) for k in sorted(outs))
    return Signature(name, inputs, outputs, submodel=None if name == "serving_default" else name)


def _sampler(signatures: tuple[Signature, ...]):
    by_name = {s.name: s for s in signatures}

    def sample_inputs(n: int, seed: int = 0, signature: str = "serving_default", size=(16, 16)):
        rng = np.random.default_rng(seed)
        return {t.name: _random(t, n, size, rng) for t in by_name[signature].inputs}

    return sample_inputs


def _random(t: TensorSpec, n: int, size, rng) -> np.ndarray:
    shape = [n, *t.shape]
    if t.is_image:
        shape[1] = shape[1] if shape[1] is not None else size[0]
        shape[2] = shape[2] if shape[2] is not None else size[1]
    shape = [d if d is not None else 1 for d in shape]
    if np.issubdtype(np.dtype(t.dtype), np.integer):
        return rng.integers(0, 2, shape).astype(t.dtype)
    return rng.uniform(-1.0, 1.0, shape).astype(t.dtype)


def probe_spatial(spec: ModelSpec, model) -> tuple[int, int]:
    """(spatial multiple, output scale) of a dynamic-size model, by running it on small sizes.

    The first multiple m (1, 2, 4, ... 64) at which a (3m, 5m) input runs and gives an
    output scaled by the same whole factor on both axes is the model's multiple.
    """
    sig = spec.default_signature
    for m in (1, 2, 4, 8, 16, 32, 64):
        size = (3 * m, 5 * m)
        try:
            outputs = sig.call(model, spec.sample_inputs(1, seed=0, size=size))
        except Exception:
            continue
        scale = _scale(outputs[sig.outputs[0].name].shape, size)
        if scale:
            return m, scale
    raise InvalidInputError(
        f"model '{spec.name}' declares dynamic H x W but did not run at any probe size"
        " (3m x 5m for m = 1..64); give its input a fixed size"
    )


def _scale(shape, size) -> int | None:
    if len(shape) != 4:
        return 1
    h, w = int(shape[1]), int(shape[2])
    if h % size[0] or w % size[1] or h // size[0] != w // size[1]:
        return None
    return h // size[0]


def with_calibration(spec: ModelSpec, npz: Path | None = None, directory: Path | None = None,
                     input_range: tuple[float, float] | None = None) -> ModelSpec:
    """The spec with calibration data from an .npz (keys = input names) or a folder of images.

    ``input_range``: the (low, high) an image folder is mapped to (default: the image
    input's declared range, else [-1, 1]; a TF-Hub model in 0..255 wants ``(0, 255)``).
    What was read is recorded in ``extra``: its source, the number of samples and a
    sha256 of the arrays, so the manifest says exactly what int8 was calibrated on.
    """
    if npz is None and directory is None:
        return spec
    if npz is not None and directory is not None:
        raise InvalidInputError("pass either --calibration-npz or --calibration-dir, not both")
    if input_range is not None and directory is None:
        raise InvalidInputError("--input-range maps the images of --calibration-dir; an .npz is used as it is")
    arrays = _read_npz(spec, Path(npz)) if npz is not None else _read_images(spec, Path(directory), input_range)

    def calibration_inputs(n: int, signature: str = "serving_default"):
        sig = spec.signature(signature)
        missing = [t.name for t in sig.inputs if t.name not in arrays]
        if missing:
            raise InvalidInputError(f"the calibration data has no {missing} for signature '{signature}'")
        return {t.name: arrays[t.name][:n] for t in sig.inputs}

    recorded = {"calibration": str(npz or directory), "calibration_available": _count(arrays),
                "calibration_sha256": _arrays_sha256(arrays)}
    if input_range is not None:
        recorded["calibration_input_range"] = list(input_range)
    return dataclasses.replace(spec, calibration_inputs=calibration_inputs, extra={**spec.extra, **recorded})


def with_output_range(spec: ModelSpec, ranges: dict[str, tuple[float, float]] | None) -> ModelSpec:
    """The spec with the value range of image outputs its model does not declare, as the user
    states it at export (``--output-range``): ``{"image": (0, 255)}``, or ``{"*": (0, 255)}`` for
    every image output without one (a TF-Hub-style SavedModel in 0..255).

    The range goes on the output's TensorSpec, so every manifest entry and the metadata inside
    the .tflite/.onnx files carry it, and parity judges the images over it without being told.
    """
    if not ranges:
        return spec
    outputs = {t.name: t for s in spec.signatures for t in s.outputs}
    _check_output_ranges(spec, ranges, outputs)

    def stated(t: TensorSpec) -> TensorSpec:
        value = ranges.get(t.name, ranges.get("*") if t.is_image and not t.value_range else None)
        return dataclasses.replace(t, value_range=tuple(value)) if value else t

    return spec.with_outputs(stated)


def _check_output_ranges(spec: ModelSpec, ranges: dict, outputs: dict[str, TensorSpec]) -> None:
    from genimg_export.errors import did_you_mean

    if spec.source is None:  # the zoo's ranges come with the model; a second source could only disagree
        declared = spec.default_signature.outputs[0].value_range
        raise InvalidInputError(f"--output-range is for your own .keras file or SavedModel; zoo model '{spec.name}'"
                                f" declares its own output range ({list(declared) if declared else 'none'})")
    for name in ranges:  # LOW < HIGH is checked where the option is parsed (cli.app.parse_output_ranges)
        if name == "*":
            continue
        if name not in outputs:
            raise InvalidInputError(f"--output-range: model '{spec.name}' has no output {name!r}"
                                    f"{did_you_mean(name, outputs)}; outputs: {list(outputs)}")
        if not outputs[name].is_image:
            raise InvalidInputError(f"--output-range: output {name!r} is not an image (H x W x 1|3); parity compares"
                                    " it by abs/rel tolerance, not over a range")
        if outputs[name].value_range:
            raise InvalidInputError(f"--output-range: output {name!r} declares its range"
                                    f" {list(outputs[name].value_range)} (its last activation); leave it out")
    if "*" in ranges and not any(t.is_image and not t.value_range for t in outputs.values()):
        have = {n: list(t.value_range) if t.value_range else None for n, t in outputs.items()}
        raise InvalidInputError(f"--output-range: '{spec.name}' has no image output without a declared range"
                                f" (outputs: {have}); nothing to declare")


def _count(arrays: dict[str, np.ndarray]) -> int:
    return min(len(a) for a in arrays.values())


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{a.dtype}\0{a.shape}\n".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _read_npz(spec: ModelSpec, path: Path) -> dict[str, np.ndarray]:
    sig = spec.default_signature
    example = ", ".join(f"{t.name}=<{t.dtype} N x {' x '.join('H' if d is None else str(d) for d in t.shape)}>"
                        for t in sig.inputs)
    if not path.is_file():
        raise NotFoundError(
            f"no such calibration file: {path} (expected an .npz, e.g. np.savez('calib.npz', {example}))"
        )
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:
        raise InvalidInputError(
            f"{path} is not an .npz file ({e}); write one with np.savez('calib.npz', {example})"
        ) from e
    missing = [t.name for t in sig.inputs if t.name not in arrays]
    if missing:
        raise InvalidInputError(
            f"{path} has keys {sorted(arrays)} but the model's inputs are {[t.name for t in sig.inputs]}"
            f" (missing {missing}); expected np.savez('calib.npz', {example})"
        )
    for t in sig.inputs:
        got = arrays[t.name].shape
        if len(got) != len(t.shape) + 1 or any(d is not None and d != g for d, g in zip(t.shape, got[1:])):
            raise InvalidInputError(
                f"{path}: '{t.name}' has shape {list(got)};"
                f" expected [N, {', '.join('any' if d is None else str(d) for d in t.shape)}]"
            )
        arrays[t.name] = arrays[t.name].astype(t.dtype)
    return arrays


def _read_images(spec: ModelSpec, folder: Path, input_range=None) -> dict[str, np.ndarray]:
    from genimg_edge.images import ImageError, load_image
    from genimg_export.zoo import data

    sig = spec.default_signature
    images = [t for t in sig.inputs if t.is_image]
    if len(sig.inputs) != 1 or not images:
        raise InvalidInputError(
            f"--calibration-dir needs a model with one image input; '{spec.name}' has inputs"
            f" {[t.name for t in sig.inputs]}: pass --calibration-npz with those keys instead"
        )
    t = images[0]
    if not folder.is_dir():
        raise NotFoundError(f"no such calibration directory: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InvalidInputError(f"{folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    h = t.shape[0] or (spec.canonical_size or CANONICAL)[0]
    w = t.shape[1] or (spec.canonical_size or CANONICAL)[1]
    try:
        batch = [data.resize(load_image(p, channels=t.shape[2])[None], h, w)[0] for p in paths]
    except ImageError as e:
        raise InvalidInputError(f"calibration image: {e}") from e
    lo, hi = input_range or t.value_range or (-1.0, 1.0)
    images = lo + (np.stack(batch) + 1.0) / 2.0 * (hi - lo)  # load_image gives [-1, 1]
    return {t.name: images.astype(t.dtype)}
