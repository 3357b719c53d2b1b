"""SavedModel for TensorFlow Serving: ``out/serving/<name>/<version>/``.

Written through ``keras.export.ExportArchive`` with one explicit endpoint per
spec signature, so input and output names are the spec's (``lr -> hr``, not
``args_0 -> output_0``), batch is dynamic and H x W are dynamic where the spec
allows. The version is built in a hidden sibling and renamed into place, so
TF Serving, which loads a version as soon as ``saved_model.pb`` appears,
never sees half of one. TFLite and ONNX convert from the SavedModels that a
``SavedModelSource`` hands out.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from genimg_export.errors import ExportError, InvalidInputError
from genimg_export import fs
from genimg_export.artifacts import manifest
from genimg_export.exporters import check, warmup
from genimg_export.fs import check_out_dir
from genimg_export.zoo.spec import ModelSpec, Signature
from genimg_serving import config_files


def write(spec: ModelSpec, model, path: Path, fixed_size: tuple[int, int] | None = None) -> None:
    """Write a SavedModel of every signature of ``spec`` to ``path`` (which must not exist).

    ``fixed_size`` pins dynamic H x W of image inputs (for backends that need it).
    Raises ExportError naming the signature and the failing layer/op.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(getattr(model, "trackable", model))
    for sig in spec.signatures:
        archive.add_endpoint(sig.name, _endpoint(sig, model), input_signature=_input_signature(sig, fixed_size))
    try:
        archive.write_out(str(path), verbose=False)  # the endpoints are traced here
    except Exception as e:  # tracing errors come as many types
        shapes = "; ".join(f"{sig.name}: {_shapes(sig, fixed_size)}" for sig in spec.signatures)
        raise ExportError(f"cannot trace '{spec.name}' with input shapes {shapes}: {check.reason(e)}") from e


def _endpoint(sig: Signature, model):
    names = [t.name for t in sig.inputs]

    def fn(*args):
        return sig.call(model, dict(zip(names, args)))

    return fn


def _input_signature(sig: Signature, fixed_size):
    import tensorflow as tf

    return [tf.TensorSpec([None, *_dims(t, fixed_size)], tf.as_dtype(t.dtype), name=t.name) for t in sig.inputs]


def _dims(t, fixed_size) -> tuple:
    if fixed_size and t.dynamic_spatial:
        return (*fixed_size, t.shape[-1])
    return t.shape


def _shapes(sig: Signature, fixed_size) -> str:
    return ", ".join(f"{t.name}={[None, *_dims(t, fixed_size)]}" for t in sig.inputs)


class SavedModelSource:
    """The SavedModels that TFLite and ONNX convert from, each written once.

    ``path()`` is the dynamic-shape SavedModel (the exported version directory
    when ``use`` was called, else a temporary one); ``path(size)`` one with
    H x W fixed at ``size``, for backends that cannot take dynamic shapes.
    """

    def __init__(self, spec: ModelSpec, model):
        self.spec, self.model = spec, model
        self._tmp = Path(tempfile.mkdtemp(prefix="genimg-savedmodel-"))
        self._paths: dict = {}
        self._made: dict = {}

    def use(self, path: Path) -> None:
        self._paths[None] = Path(path)

    def path(self, fixed_size: tuple[int, int] | None = None) -> Path:
        key = tuple(fixed_size) if fixed_size else None
        if key not in self._paths:
            target = self._tmp / ("dynamic" if key is None else f"{key[0]}x{key[1]}")
            write(self.spec, self.model, target, key)
            self._paths[key] = target
        return self._paths[key]

    def cached(self, key: tuple, make) -> Path:
        """A temporary file made once by ``make(path)`` and then reused, e.g. the fp32
        ONNX of a signature that both the fp32 and the int8 exporter start from."""
        if key not in self._made:
            target = self._tmp / "-".join(str(k) for k in key)
            make(target)
            self._made[key] = target
        return self._made[key]

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> SavedModelSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def versions(base: Path) -> list[int]:
    """The numeric version directories under a model's base path, ascending."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def check_new_version(out: Path, spec: ModelSpec, version: int | None) -> int:
    """The version to write: ``version`` if it is new, else the next after the highest present."""
    base = Path(out) / "serving" / spec.name
    present = versions(base)
    if version is None:
        return (present[-1] + 1) if present else 1
    if version < 1:
        raise InvalidInputError(f"--version must be a positive integer, got {version}")
    if (base / str(version)).exists():
        raise ExportError(
            f"version {version} of '{spec.name}' already exists at {base / str(version)}; TF Serving"
            f" may be serving it, so it is not overwritten. Pass --version {max(present, default=0) + 1}"
            " (or omit --version for the next one), or remove that directory first"
        )
    return version


def export(spec: ModelSpec, model, out: Path, variant: str = "fp32", source=None,
           version: int | None = None, log=None) -> manifest.Artifact:
    """Export ``out/serving/<name>/<version>/`` (+ warmup) and update the serving configs.

    Args:
        version: the version number; default the next after the highest present.
            An existing version is never overwritten (ExportError).
        source: unused (a SavedModel is made from the Keras model itself).
    """
    start = time.perf_counter()
    base = check_out_dir(out / "serving" / spec.name)
    fs.sweep_stale(base)
    version = check_new_version(out, spec, version)
    target = base / str(version)
    if log:
        log(f"tracing {len(spec.signatures)} signature(s)")
    with fs.atomic_path(target, replace=False) as tmp:
        fixed, why = _write_with_fallback(spec, model, tmp)
        warmup.write(spec, tmp / "assets.extra" / warmup.FILENAME, fixed)
    config_files.update(out / "serving", spec.name)
    artifact = manifest.make_artifact(
        spec, out, target, "saved_model", variant, signatures=spec.signatures,
        source=manifest.source_sha256(spec, model), versions=manifest.tool_versions(),
        seconds=time.perf_counter() - start, fixed_size=fixed,
        options={"version": version, **({"fixed_size_reason": why} if why else {})},
    )
    return artifact


def _write_with_fallback(spec: ModelSpec, model, path: Path):
    """Dynamic H x W where the spec allows; the canonical size if tracing with None dims fails.
    Returns (fixed_size or None, why it is fixed or None)."""
    try:
        write(spec, model, path)
        return None, None
    except ExportError as dynamic_error:
        if not (spec.dynamic_spatial and spec.canonical_size):
            raise
        fs.remove(path)
        try:
            write(spec, model, path, spec.canonical_size)
        except ExportError:
            raise dynamic_error from None
        return list(spec.canonical_size), f"dynamic H x W: {check.reason(dynamic_error)}"

