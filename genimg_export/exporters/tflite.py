"""TFLite (LiteRT) converter: ``out/tflite/<name>.<variant>.tflite``, one file for every signature.

What each variant does is the format table's ``Variant.quantization``:

- none: the float model;
- float16 weights (computation in float32 where the CPU lacks fp16);
- int8 weights, float activations (dynamic-range quantization);
- full integer, calibrated on >= 100 samples of the spec's
  ``calibration_inputs``; float I/O by default, int8 I/O with ``int8_io``.
  With float I/O (a CPU model), ops LiteRT has no fast int8 kernel for
  (``FLOAT_OPS_IN_INT8``: PRELU) stay float between (de)quantize ops, since
  LiteRT's int8 PRELU is its slow reference kernel, not XNNPACK (measured in
  benchmarks/README.md). ``int8_io`` files stay integer-only, for
  integer-only accelerators. A normalisation's statistics (mean, variance,
  rsqrt) stay float too (``norm_stats``; the manifest's ``float_statistics``).
- In every variant a scalar-alpha PRELU is written as LEAKY_RELU (the same
  function; XNNPACK runs it in int8, so it needs no float island:
  ``tflite_leaky``).

Converted from the SavedModel (every signature kept, so vae's ``encode`` and
``serving_default`` live in one file); the pipeline (``exporters.pipeline``)
smoke-runs it, falls back to a fixed size and embeds the metadata. At a fixed
size the SavedModel is the model's function retraced with every dim known,
batch 1 included: a conv after an upsampling legalizes to a builtin only then.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genimg_export.artifacts.formats import FLOAT16_WEIGHTS, FULL_INTEGER, INT8_WEIGHTS
from genimg_export.errors import InvalidInputError
from genimg_export.exporters import check, norm_stats
from genimg_export.exporters.pipeline import Converted, Job
from genimg_export.exporters.tflite_leaky import scalar_prelu_as_leaky_relu
from genimg_export.zoo.spec import ModelSpec

MIN_CALIBRATION = 100
FLOAT_OPS_IN_INT8 = ("PRELU",)  # no XNNPACK int8 kernel; LiteRT's int8 one is the slow reference code
QUANTIZATIONS = (None, FLOAT16_WEIGHTS, INT8_WEIGHTS, FULL_INTEGER)


def convert(job: Job, fixed_size=None) -> Converted:
    """The job's variant as .tflite bytes, written with the metadata embedded."""
    spec, options = job.spec, {}
    int8_io = bool(job.options.get("int8_io", False))
    samples = job.options.get("calibration_samples", MIN_CALIBRATION)
    if job.variant.calibrated:
        options = {"int8_io": int8_io, **calibration_options(spec, samples)}
    saved_model = job.source.path(fixed_size, job.fixed_batch if fixed_size else None)
    model_bytes, float_statistics = convert_bytes(spec, saved_model, job.variant.quantization, int8_io=int8_io,
                                                  calibration_samples=samples, fixed_size=fixed_size, log=job.log)
    if float_statistics:
        options["float_statistics"] = float_statistics

    def write(path: Path, meta: dict) -> None:
        from genimg_edge.metadata import embed_metadata

        path.write_bytes(embed_metadata(model_bytes, meta))

    return Converted(write, options)


def calibration_options(spec: ModelSpec, samples: int) -> dict:
    """What a calibrated artifact records about its calibration (and where user data came from)."""
    options = {"calibration_samples": samples}
    if "calibration" in spec.extra:  # a user's data: where it came from, how much was used, its hash
        options["calibration"] = spec.extra["calibration"]
        options["calibration_used"] = min(samples, spec.extra["calibration_available"])
        for key in ("calibration_sha256", "calibration_input_range"):
            if key in spec.extra:
                options[key] = spec.extra[key]
    return options


def convert_bytes(spec: ModelSpec, saved_model: Path, quantization: str | None, int8_io: bool = False,
                  calibration_samples: int = MIN_CALIBRATION, fixed_size=None, log=None) -> tuple[bytes, list[str]]:
    """The .tflite bytes converted from a SavedModel directory with ``quantization`` (a
    ``Variant.quantization``; ``fixed_size``: the H x W that SavedModel was written at, if not dynamic),
    and the normalisations whose statistics a full-integer file keeps float (``norm_stats``: each one's
    1/sqrt tensor)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=[s.name for s in spec.signatures]
    )
    if quantization not in QUANTIZATIONS:
        raise InvalidInputError(f"unknown TFLite quantization '{quantization}'; expected one of {list(QUANTIZATIONS)}")
    full_integer = quantization == FULL_INTEGER
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == FLOAT16_WEIGHTS:
        converter.target_spec.supported_types = [tf.float16]
    if full_integer:
        converter.representative_dataset = representative_dataset(spec, calibration_samples, fixed_size, log)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with check.quiet_native_output():
        model_bytes, _ = scalar_prelu_as_leaky_relu(converter.convert())
        norms = norm_stats.tflite_tensors(model_bytes) if full_integer and not int8_io else []
        if full_integer and not int8_io and (norms or has_ops(model_bytes, FLOAT_OPS_IN_INT8)):
            model_bytes = _quantize_keeping_float(converter, spec, calibration_samples, fixed_size, norms)
            model_bytes, _ = scalar_prelu_as_leaky_relu(model_bytes)  # a model with both forms of PReLU
    return model_bytes, [chain[0] for chain in norms]


def has_ops(model_bytes: bytes, names) -> bool:
    """Whether a .tflite model uses any of the builtin ops ``names`` (e.g. "PRELU")."""
    from ai_edge_litert import schema_py_generated as schema

    return bool(set(names) & set(norm_stats.operator_names(schema.Model.GetRootAsModel(model_bytes, 0))))


def _quantize_keeping_float(converter, spec: ModelSpec, samples: int, fixed_size, norms=()) -> bytes:
    """Full-integer quantization except ``FLOAT_OPS_IN_INT8`` and the statistics of each
    normalisation in ``norms`` (``norm_stats``), by TF's selective quantization."""
    import tensorflow as tf

    nodes = [name for chain in norms for name in chain]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_OPS_IN_INT8),
                                                            denylisted_nodes=nodes or None)
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
        for t in sig.inputs:
            if t.dynamic_spatial and tuple(arrays[t.name].shape[1:3]) != tuple(fixed_size):
                arrays[t.name] = _resize(arrays[t.name], fixed_size).astype(t.dtype)
    return arrays


def _resize(images: np.ndarray, size) -> np.ndarray:
    """Bicubic resize kept within the data's own range (images may be in 0..255, not
    the zoo's [-1, 1]: clipping them there calibrated a 0..255 model on a flat grey)."""
    import tensorflow as tf

    out = tf.image.resize(images, tuple(size), method="bicubic", antialias=True).numpy()
    return np.clip(out, images.min(), images.max())


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
