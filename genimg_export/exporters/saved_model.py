"""SavedModel converter for TensorFlow Serving: ``out/serving/<name>/<version>/``.

Written through ``keras.export.ExportArchive`` with one explicit endpoint per
spec signature, so input and output names are the spec's (``lr -> hr``, not
``args_0 -> output_0``), batch is dynamic and H x W are dynamic where the spec
allows. The pipeline builds the version in a hidden sibling and renames it
into place, so TF Serving, which loads a version as soon as ``saved_model.pb``
appears, never sees half of one. TFLite and ONNX convert from the SavedModels
that a ``SavedModelSource`` hands out.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from genimg_export.errors import ExportError
from genimg_export.exporters import check, precision, warmup
from genimg_export.exporters.pipeline import Converted, Job, make, new_version, versions
from genimg_export.zoo.spec import ModelSpec, Signature
from genimg_serving import config_files

__all__ = ["SavedModelSource", "check_new_version", "convert", "export", "versions", "write_saved_model"]


def write_saved_model(spec: ModelSpec, model, path: Path, fixed_size: tuple[int, int] | None = None,
                      batch: int | None = None, xla: bool = False, cast_outputs: bool = False) -> None:
    """Write a SavedModel of every signature of ``spec`` to ``path`` (which must not exist).

    ``fixed_size`` pins dynamic H x W of image inputs (for backends that need it) and
    ``batch`` the batch dim of such a retrace (TFLite legalizes a conv after an upsampling
    only when every dim is known; see DESIGN's pitfalls). ``xla`` compiles each signature
    with XLA (``jit_compile=True``; XLA compiles once per input shape it sees);
    ``cast_outputs`` casts float outputs to float32 (a model under a reduced-precision policy).
    Raises ExportError naming the signature and the failing layer/op.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(getattr(model, "trackable", model))
    for sig in spec.signatures:
        fn, shapes = _endpoint(sig, model, cast_outputs), _input_signature(sig, fixed_size, batch)
        if xla:
            archive.add_endpoint(sig.name, _xla_function(fn, shapes))
        else:
            archive.add_endpoint(sig.name, fn, input_signature=shapes)
    try:
        archive.write_out(str(path), verbose=False)  # the endpoints are traced here
    except Exception as e:  # tracing errors come as many types
        shapes = "; ".join(f"{sig.name}: {_shapes(sig, fixed_size)}" for sig in spec.signatures)
        raise ExportError(f"cannot trace '{spec.name}' with input shapes {shapes}: {check.reason(e)}") from e


def _endpoint(sig: Signature, model, cast_outputs: bool = False):
    names = [t.name for t in sig.inputs]

    def fn(*args):
        outputs = sig.call(model, dict(zip(names, args)))
        return precision.float32_outputs(outputs) if cast_outputs else outputs

    return fn


def _xla_function(fn, input_signature):
    """``fn`` as a traced ``tf.function(jit_compile=True)``: the SavedModel keeps the
    must-compile attribute, so TF Serving runs the signature through XLA."""
    import tensorflow as tf

    compiled = tf.function(fn, input_signature=input_signature, autograph=False, jit_compile=True)
    compiled.get_concrete_function()  # ExportArchive takes a tf.function only once traced
    return compiled


def _input_signature(sig: Signature, fixed_size, batch=None):
    import tensorflow as tf

    first = batch if fixed_size else None
    return [tf.TensorSpec([first, *_dims(t, fixed_size)], tf.as_dtype(t.dtype), name=t.name) for t in sig.inputs]


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
    H x W fixed at ``size`` (and the batch at ``batch``), for backends that cannot take
    dynamic shapes. ``fixed`` notes, per format, why an earlier variant of this run needed
    a fixed size, so later ones go straight to it.
    """

    def __init__(self, spec: ModelSpec, model):
        self.spec, self.model = spec, model
        self._tmp = Path(tempfile.mkdtemp(prefix="genimg-savedmodel-"))
        self._paths: dict = {}
        self._made: dict = {}
        self.fixed: dict[str, str] = {}

    def use(self, path: Path) -> None:
        self._paths[None] = Path(path)

    def path(self, fixed_size: tuple[int, int] | None = None, batch: int | None = None) -> Path:
        key = (*fixed_size, batch) if fixed_size else None
        if key not in self._paths:
            target = self._tmp / ("any-size" if key is None else f"{key[0]}x{key[1]}-batch{key[2]}")
            write_saved_model(self.spec, self.model, target, fixed_size, batch)
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


def convert(job: Job, fixed_size=None) -> Converted:
    """A SavedModel version of every signature (+ warmup requests); the serving configs are
    updated once the pipeline has renamed it into place. ``fixed_size`` pins dynamic H x W.

    A variant with a ``compute_dtype`` is the model rebuilt under that Keras dtype policy,
    with float32 inputs and outputs, served under its own model name (``srgan_bf16``);
    the ``xla`` option compiles every signature with XLA."""
    spec, variant, xla = job.spec, job.variant, bool(job.options.get("xla"))
    policy = variant.compute_dtype
    model = precision.under_policy(job.model, policy) if policy else job.model
    served = job.row.served_name(spec.name, variant.name)

    def write(path: Path, meta: dict) -> None:
        if job.log:
            job.log(f"tracing {len(spec.signatures)} signature(s)" + (" for XLA" if xla else ""))
        write_saved_model(spec, model, path, fixed_size, job.fixed_batch if fixed_size else None, xla=xla,
                          cast_outputs=policy is not None)
        warmup.write(spec, path / "assets.extra" / warmup.FILENAME, fixed_size)

    options = {"served_as": served, "hosts": list(variant.hosts), **({"compute_dtype": policy} if policy else {})}
    if xla:
        options["xla"] = XLA_SHAPES if fixed_size is None else f"jit_compile=True at the fixed {fixed_size}"
    return Converted(write, options, finish=lambda: config_files.update(job.out / job.row.folder, served))


XLA_SHAPES = ("jit_compile=True; XLA compiles once per input shape (batch x H x W) a server sees: send a few"
              " fixed tile sizes, or export with --input-size and --batch for one static shape")


def export(spec: ModelSpec, model, out: Path, variant: str | None = None, source=None, version: int | None = None,
           log=None):
    """Export ``out/serving/<name>/<version>/`` (+ warmup) and update the serving configs;
    the Artifact is returned, not recorded in the manifest (``exporters.export_variant`` does both).

    Args:
        version: the version number; default the next after the highest present.
            An existing version is never overwritten (ExportError).
    """
    from genimg_export.artifacts.formats import FORMATS

    variant = variant or FORMATS["saved_model"].default.name
    (artifact,) = make(spec, model, out, "saved_model", variant, source, log, {"version": version})
    return artifact


def check_new_version(out: Path, spec: ModelSpec, version: int | None, variants=()) -> None:
    """ExportError unless ``version`` (None: the next) is new for the model name each of
    ``variants`` (default: the default one) is served under."""
    from genimg_export.artifacts.formats import FORMATS

    row = FORMATS["saved_model"]
    for variant in variants or (row.default.name,):
        new_version(out, spec, version, row.served_name(spec.name, variant))
