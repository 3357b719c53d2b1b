"""TFLite (LiteRT): ``out/tflite/<name>.<variant>.tflite`` in four variants.

- ``fp32``: float model.
- ``fp16``: float16 weights (computation in float32 where the CPU lacks fp16).
- ``dynamic``: int8 weights, float activations (dynamic-range quantization).
- ``int8``: full integer, calibrated on >= 100 samples of the spec's
  ``calibration_inputs``; float I/O by default, int8 I/O with ``int8_io``.
  With float I/O (a CPU model), ops LiteRT has no fast int8 kernel for
  (``FLOAT_OPS_IN_INT8``: PRELU) stay float between (de)quantize ops: int8
  PRELU runs LiteRT's reference kernel, not XNNPACK, ~50x the float op's time
  (srgan 64x64: 43 -> 20 ms at 2 threads, same PSNR; see benchmarks/README.md).
  ``int8_io`` files stay integer-only, for integer-only accelerators.

Converted from the SavedModel (every signature kept, so vae's ``encode`` and
``serving_default`` live in one file), with dynamic H x W kept where LiteRT
runs the model at a new size, else converted at the spec's canonical size and
``fixed_size`` recorded. The genimg_export metadata is embedded in the file.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from genimg_export.errors import ExportError, InvalidInputError
from genimg_export import fs
from genimg_export.artifacts import manifest
from genimg_export.exporters import check
from genimg_export.fs import check_out_dir
from genimg_export.zoo.spec import ModelSpec

MIN_CALIBRATION = 100
FLOAT_OPS_IN_INT8 = ("PRELU",)  # no XNNPACK int8 kernel; LiteRT's int8 one is the slow reference code
CALIBRATION_FLAGS = "--calibration-npz FILE.npz (keys = input names) or --calibration-dir DIR (images)"


def path_for(out: Path, spec: ModelSpec, variant: str) -> Path:
    return Path(out) / "tflite" / f"{spec.name}.{variant}.tflite"


def export(spec: ModelSpec, model, out: Path, variant: str, source, int8_io: bool = False,
           calibration_samples: int = MIN_CALIBRATION, log=None) -> manifest.Artifact:
    """Convert, smoke-run, embed metadata and atomically write one variant.

    Args:
        source: a ``saved_model.SavedModelSource`` to convert from.
        int8_io: int8 variant only: int8 input/output tensors instead of float.
        calibration_samples: int8 variant only: representative samples (>= 100 advised).
    """
    start = time.perf_counter()
    require_calibration(spec, variant)
    options = {"int8_io": int8_io, **calibration_options(spec, calibration_samples)} if variant == "int8" else {}
    target = path_for(out, spec, variant)
    check_out_dir(target.parent)
    fs.sweep_stale(target.parent)
    settings = {"int8_io": int8_io, "calibration_samples": calibration_samples}
    model_bytes, fixed, why = _convert_checked(spec, source, variant, settings, log)
    if why:
        options["fixed_size_reason"] = why
    source_hash = manifest.source_sha256(spec, model)
    versions = manifest.tool_versions("ai-edge-litert")
    meta = manifest.embedded_metadata(spec, "tflite", variant, spec.signatures, source_hash, versions, fixed, options)
    from genimg_edge.metadata import embed_metadata

    with fs.atomic_path(target) as tmp:
        tmp.write_bytes(embed_metadata(model_bytes, meta))
    return manifest.make_artifact(
        spec, out, target, "tflite", variant, signatures=spec.signatures, source=source_hash,
        versions=versions, seconds=time.perf_counter() - start, fixed_size=fixed, options=options,
    )


def calibration_options(spec: ModelSpec, samples: int) -> dict:
    """What an int8 artifact records about its calibration (and where user data came from)."""
    options = {"calibration_samples": samples}
    if "calibration" in spec.extra:
        options["calibration"] = spec.extra["calibration"]
    return options


def require_calibration(spec: ModelSpec, variant: str) -> None:
    if variant == "int8" and spec.calibration_inputs is None:
        raise InvalidInputError(
            f"int8 needs calibration data and model '{spec.name}' has none; pass {CALIBRATION_FLAGS}"
        )


def _convert_checked(spec: ModelSpec, source, variant: str, settings: dict, log):
    """Convert with dynamic H x W and prove it runs at a new size; else fall back to the
    canonical size. Returns (bytes, fixed_size or None, why it is fixed or None)."""
    try:
        model_bytes = convert(spec, source.path(), variant, log=log, **settings)
        check.run_tflite(model_bytes, spec, check.probe_size(spec))
        return model_bytes, None, None
    except Exception as e:
        if not (spec.dynamic_spatial and spec.canonical_size):
            raise ExportError(f"TFLite {variant} of '{spec.name}': {check.reason(e)}") from e
        dynamic_error = e
    fixed = list(spec.canonical_size)
    if log:
        log(f"dynamic H x W failed ({check.reason(dynamic_error)}); retrying at {fixed[0]}x{fixed[1]}")
    try:
        model_bytes = convert(spec, source.path(fixed), variant, fixed_size=fixed, log=log, **settings)
        check.run_tflite(model_bytes, spec, fixed)
    except Exception as e:
        raise check.fallback_failed(f"TFLite {variant} of '{spec.name}'", e, dynamic_error, fixed) from e
    return model_bytes, fixed, f"dynamic H x W: {check.reason(dynamic_error)}"


def convert(spec: ModelSpec, saved_model: Path, variant: str, int8_io: bool = False,
            calibration_samples: int = MIN_CALIBRATION, fixed_size=None, log=None) -> bytes:
    """The .tflite bytes of ``variant`` converted from a SavedModel directory
    (``fixed_size``: the H x W that SavedModel was written at, if not dynamic)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=[s.name for s in spec.signatures]
    )
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(spec, calibration_samples, fixed_size, log)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif variant != "fp32":
        raise InvalidInputError(f"unknown TFLite variant '{variant}'; expected fp32, fp16, dynamic or int8")
    with check.quiet_native_output():
        model_bytes = converter.convert()
        if variant == "int8" and not int8_io and has_ops(model_bytes, FLOAT_OPS_IN_INT8):
            model_bytes = _quantize_keeping_float(converter, spec, calibration_samples, fixed_size)
    return model_bytes


def has_ops(model_bytes: bytes, names) -> bool:
    """Whether a .tflite model uses any of the builtin ops ``names`` (e.g. "PRELU")."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_bytes, 0)
    wanted = {getattr(schema.BuiltinOperator, n) for n in names}
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return any(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) in wanted for c in codes)


def _quantize_keeping_float(converter, spec: ModelSpec, samples: int, fixed_size) -> bytes:
    """Full-integer quantization except ``FLOAT_OPS_IN_INT8`` (TF's selective quantization)."""
    import tensorflow as tf

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_OPS_IN_INT8))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative_dataset(spec, samples, fixed_size), debug_options=options
    )
    return debugger.get_nondebug_quantized_model()


def calibration_data(spec: ModelSpec, sig, n: int, fixed_size=None) -> dict[str, np.ndarray]:
    """``n`` calibration samples of ``sig`` as dtype-correct arrays; image inputs of a
    fixed-size export are resized to that size (the data may come at another one)."""
    data = spec.calibration_inputs(n, signature=sig.name)
    arrays = {t.name: np.asarray(data[t.name]).astype(t.dtype) for t in sig.inputs}
    if fixed_size:
        from genimg_export.zoo.data import resize

        for t in sig.inputs:
            if t.dynamic_spatial and tuple(arrays[t.name].shape[1:3]) != tuple(fixed_size):
                arrays[t.name] = resize(arrays[t.name], *fixed_size).astype(t.dtype)
    return arrays


def representative_dataset(spec: ModelSpec, n: int, fixed_size=None, log=None):
    """A generator factory over ``n`` calibration samples of every signature, one at a time."""
    batches = {s.name: calibration_data(spec, s, n, fixed_size) for s in spec.signatures}
    multi = len(spec.signatures) > 1

    def generate():
        for sig in spec.signatures:
            data = batches[sig.name]
            count = min(len(data[t.name]) for t in sig.inputs)
            for i in range(count):
                if log and i % 20 == 0:
                    log(f"calibrating {sig.name}: {i}/{count}")
                sample = {t.name: data[t.name][i : i + 1] for t in sig.inputs}
                yield (sig.name, sample) if multi else sample

    return generate
