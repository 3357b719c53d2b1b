"""The declarative format table: one row per export format, the one owner of what a format is.

A row holds its variants (each with its default tolerance, the options it
takes, whether it is calibrated, whether integer kernels do its work), where
its files live (read by ``layout``), the converter that makes one variant, the
runner that runs it and that runner's options. The export pipeline, discovery,
parity, bench and the CLI's choices all read this table; no other module of the
package spells a variant's name.

Adding a format is one row here, one converter module with a ``convert``
function (see ``genimg_export.exporters.pipeline``) and one runner in
``genimg_export.runners.BACKENDS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from genimg_export.errors import InvalidInputError, did_you_mean


@dataclass(frozen=True)
class Tolerance:
    """How close an exported variant must stay to the Keras reference.

    Any of the bounds may be set; all set ones must hold. A value looser than
    the house starting point carries a ``reason``.
    """

    max_abs: float | None = None
    min_psnr_db: float | None = None
    min_ssim: float | None = None
    reason: str | None = None


FP32 = Tolerance(max_abs=1e-4)  # float backends on [-1, 1] outputs (DESIGN.md)


@dataclass(frozen=True)
class Variant:
    """One variant of a format.

    Args:
        name: manifest ``variant``, CLI choice and file-name tag.
        tolerance: the house default for parity (specs may override it).
        options: option names it accepts beyond spec/model/out; others are refused.
        calibrated: needs ``spec.calibration_inputs`` (real data) to be made.
        integer_kernels: integer kernels do the work (bench compares it with the int8 GEMM peak).
        quantization: what the converter does to the float model (None: nothing);
            read by the format's converter, never by name.
        compute_dtype: the Keras dtype policy the converter rebuilds the model under
            (None: as trained); I/O stays float32 either way.
        hosts: the hosts it is meant for, recorded in its manifest entry.
        opt_in: made by ``all`` only when asked for (it would lengthen every export).
    """

    name: str
    tolerance: Tolerance = FP32
    options: tuple[str, ...] = ()
    calibrated: bool = False
    integer_kernels: bool = False
    quantization: str | None = None
    compute_dtype: str | None = None
    hosts: tuple[str, ...] = ()
    opt_in: bool = False

    @property
    def reduced_precision(self) -> bool:
        """Quantized or reduced-precision: the task metric is scored for it in parity."""
        return self.quantization is not None or self.compute_dtype is not None


@dataclass(frozen=True)
class Format:
    """One export format.

    Args:
        name: manifest ``format``.
        title: how messages name it ("ONNX").
        variants: in export order; the first is the default float one.
        converter: ``module:function`` making one variant (imported lazily).
        runner: backend name in ``genimg_export.runners.BACKENDS``.
        folder: the folder under the export directory its artifacts live in.
        suffix: file suffix, or "" for a directory artifact.
        per_signature: one file per signature (else one artifact holds them all).
        versioned: ``<folder>/<model>/<version>/`` (TF Serving's layout).
        marker: a file whose presence marks a directory artifact as complete.
        tag_default: whether the default variant's name is part of its file name.
        thread_option: the runner keyword that takes a thread count, if any.
        served_by: server backends that serve this format's artifacts (same tolerance).
        tools: distributions whose versions the manifest records beside the base ones.
        read_metadata: ``module:function`` reading a file's embedded metadata (None if
            absent), for ``info`` and for discovery without a manifest (the fixed size).
        fixed_batch: the batch dim of a fixed-size file (None: dynamic, or ``--batch``);
            a row whose runner feeds one sample at a time pins it and refuses ``--batch``.
    """

    name: str
    title: str
    variants: tuple[Variant, ...]
    converter: str
    runner: str
    folder: str
    suffix: str = ""
    per_signature: bool = False
    versioned: bool = False
    marker: str = ""
    tag_default: bool = True
    thread_option: str | None = None
    served_by: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    read_metadata: str = ""
    fixed_batch: int | None = None

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    @property
    def default(self) -> Variant:
        return self.variants[0]

    def served_name(self, model: str, variant: str) -> str:
        """The model name a versioned row's variant is served under: the model's own for the
        default variant, ``<model>_<variant>`` for the others (its own models.config entry)."""
        return model if variant == self.default.name else f"{model}_{variant}"

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; InvalidInputError naming the choices otherwise."""
        for v in self.variants:
            if v.name == name:
                return v
        names = self.variant_names
        raise InvalidInputError(
            f"unknown {self.name} variant '{name}'{did_you_mean(name, names)}; expected one of {', '.join(names)}"
        )

    def convert_fn(self):
        return _load(self.converter)

    def metadata_fn(self):
        return _load(self.read_metadata) if self.read_metadata else None

    def runner_options(self, threads: int | None) -> dict:
        """Keyword options for this row's runner at ``threads`` threads (None: the runtime's default)."""
        return {self.thread_option: threads} if threads and self.thread_option else {}


def _load(ref: str):
    module, fn = ref.split(":")
    return getattr(importlib.import_module(module), fn)


_QUANTIZED = Tolerance(min_psnr_db=30.0)
# Variant.quantization values: what a converter does to the float model.
FLOAT16_WEIGHTS, INT8_WEIGHTS, FULL_INTEGER = "float16 weights", "int8 weights", "full integer"
_SAVED_MODEL_OPTIONS = ("version", "xla")
# Reduced-precision SavedModels, measured through `parity` on the six zoo models on the CPU
# (docs/accelerators.md). bf16 keeps 8 bits of mantissa (~2^-8 = 0.4% relative error per op):
# images 58.9-62.7 dB (max abs up to 3e-2 on [-1, 1]), worst output vae's z_log_var at 45.7 dB.
# Mixed fp16 keeps 11 bits and float32 variables: images 72-79 dB, worst 60.6 dB (z_log_var).
# Each floor sits ~10 dB under the worst: deeper or differently trained models add error.
_BF16 = Tolerance(min_psnr_db=35.0, reason="bfloat16 weights and compute: 8-bit mantissa, ~0.4% error per op;"
                  " zoo worst 45.7 dB")
_MIXED_FP16 = Tolerance(min_psnr_db=50.0, reason="float16 compute (mixed precision): 11-bit mantissa; zoo worst"
                        " 60.6 dB")

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="saved_model",
            title="SavedModel",
            variants=(
                Variant("fp32", options=_SAVED_MODEL_OPTIONS, hosts=("cpu", "gpu")),
                Variant("bf16", _BF16, options=_SAVED_MODEL_OPTIONS, compute_dtype="bfloat16",
                        hosts=("tpu", "gpu (bf16 tensor cores: A100, H100 and newer)"), opt_in=True),
                Variant("fp16", _MIXED_FP16, options=_SAVED_MODEL_OPTIONS, compute_dtype="mixed_float16",
                        hosts=("gpu (fp16 tensor cores: V100, T4 and newer)",), opt_in=True),
            ),
            converter="genimg_export.exporters.saved_model:convert",
            runner="saved_model",
            folder="serving",
            versioned=True,
            marker="saved_model.pb",
            served_by=("grpc", "rest"),
        ),
        Format(
            name="tflite",
            title="TFLite",
            variants=(
                Variant("fp32"),
                Variant("fp16", Tolerance(min_psnr_db=45.0), quantization=FLOAT16_WEIGHTS),
                Variant("dynamic", Tolerance(min_psnr_db=35.0), integer_kernels=True, quantization=INT8_WEIGHTS),
                Variant("int8", _QUANTIZED, options=("int8_io", "calibration_samples"), calibrated=True,
                        integer_kernels=True, quantization=FULL_INTEGER),
            ),
            converter="genimg_export.exporters.tflite:convert",
            runner="tflite",
            folder="tflite",
            suffix=".tflite",
            thread_option="num_threads",
            tools=("ai-edge-litert",),
            read_metadata="genimg_edge.metadata:read_metadata",
            fixed_batch=1,  # the edge runner runs batch-1 files sample by sample
        ),
        Format(
            name="onnx",
            title="ONNX",
            variants=(
                Variant("fp32", options=("opset",)),
                Variant("int8", _QUANTIZED, options=("opset", "calibration_samples"), calibrated=True,
                        integer_kernels=True, quantization=FULL_INTEGER),
            ),
            converter="genimg_export.exporters.onnx:convert",
            runner="onnx",
            served_by=("v2",),  # Triton/KServe serve the ONNX files over the v2 protocol
            folder="onnx",
            suffix=".onnx",
            per_signature=True,
            tag_default=False,
            thread_option="num_threads",
            tools=("tf2onnx", "onnx", "onnxruntime"),
            read_metadata="genimg_export.exporters.onnx:read_metadata",
        ),
    )
}


def format_variants(chosen: dict[str, list[str]] | None = None) -> list[tuple[str, str]]:
    """Every (format, variant) pair, in export order: the rows of the ✓/✗ table.

    Opt-in variants are left out; ``chosen`` maps a format to the variants wanted of it
    instead (checked against the row), e.g. ``{"saved_model": ["fp32", "bf16"]}``.
    """
    chosen = chosen or {}
    for fmt, names in chosen.items():
        for name in names:
            get(fmt).variant(name)
    return [(f.name, v.name) for f in FORMATS.values() for v in f.variants
            if (v.name in chosen[f.name] if f.name in chosen else not v.opt_in)]


def opt_in_variants(fmt: str) -> tuple[str, ...]:
    """The variants of ``fmt`` that ``all`` makes only when asked for."""
    return tuple(v.name for v in get(fmt).variants if v.opt_in)


def get(fmt: str) -> Format:
    """The row called ``fmt``; InvalidInputError naming the formats otherwise."""
    if fmt not in FORMATS:
        raise InvalidInputError(
            f"unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}; expected one of {', '.join(FORMATS)}"
        )
    return FORMATS[fmt]


def by_runner(backend: str) -> Format | None:
    """The row whose artifacts ``backend`` runs or serves (None for keras)."""
    return next((f for f in FORMATS.values() if backend == f.runner or backend in f.served_by), None)


def find_variant(backend: str, variant: str | None) -> Variant | None:
    """The Variant a runner ``backend`` runs as ``variant``, or None (keras, unknown names)."""
    row = by_runner(backend)
    return next((v for v in row.variants if v.name == variant), None) if row else None


def runner_options(backend: str, threads: int | None) -> dict:
    """Runner keyword options of ``backend`` for a thread count ({} where it takes none)."""
    row = by_runner(backend)
    return row.runner_options(threads) if row is not None and row.runner == backend else {}


def default_tolerances() -> dict[tuple[str, str], Tolerance]:
    """(backend, variant) -> house tolerance, for every row and the servers of its artifacts."""
    table = {}
    for f in FORMATS.values():
        for v in f.variants:
            for backend in (f.name, *f.served_by):
                table[(backend, v.name)] = v.tolerance
    return table


def served_variant(backend: str) -> str:
    """The variant a server backend (grpc, rest) serves: its format's default one."""
    row = by_runner(backend)
    if row is None:
        raise InvalidInputError(f"no format is served by backend '{backend}'")
    return row.default.name


OPSETS = range(13, 19)  # ONNX opsets tf2onnx and onnxruntime both handle here
DEFAULT_OPSET = 17
RANGES = {"opset": OPSETS}


def options_for(fmt: str, variant: str, options: dict) -> dict:
    """The options set (not None) in ``options``, all of which ``variant`` must accept.

    Raises InvalidInputError naming the option, the variant and what it accepts.
    """
    accepted = accepted_options(fmt, variant)
    given = {k: v for k, v in options.items() if v is not None}
    refused = [k for k in given if k not in accepted]
    if refused:
        takes = ", ".join(_flag(o) for o in accepted) or "no options"
        raise InvalidInputError(
            f"{fmt} {variant} does not take {', '.join(_flag(k) for k in refused)}; it accepts: {takes}"
        )
    for name, allowed in RANGES.items():
        if name in given and given[name] not in allowed:
            raise InvalidInputError(
                f"{_flag(name)} must be between {allowed.start} and {allowed.stop - 1}, got {given[name]}"
            )
    return given


def applicable(fmt: str, variant: str, options: dict) -> dict:
    """The options set in ``options`` that ``variant`` accepts (for runs over several variants)."""
    accepted = accepted_options(fmt, variant)
    return {k: v for k, v in options.items() if v is not None and k in accepted}


def check_options(pairs: list[tuple[str, str]], options: dict) -> None:
    """Refuse an option set in ``options`` that no (format, variant) of ``pairs`` accepts."""
    if len(pairs) == 1:
        options_for(*pairs[0], options)
        return
    taken = {o for fmt, v in pairs for o in accepted_options(fmt, v)}
    refused = [k for k, v in options.items() if v is not None and k not in taken]
    if refused:
        which = ", ".join(f"{f} {v}" for f, v in pairs)
        raise InvalidInputError(f"none of {which} takes {', '.join(_flag(k) for k in refused)}")


def accepted_options(fmt: str, variant: str) -> tuple[str, ...]:
    """The variant's own options, plus the fixed size every row takes (and the batch,
    where the row's fixed-size files keep one)."""
    row = get(fmt)
    shape = ("input_size",) if row.fixed_batch else ("input_size", "batch")
    return (*row.variant(variant).options, *shape)


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")
