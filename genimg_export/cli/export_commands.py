"""CLI commands: saved-model, tflite, onnx, all (exports) and info (what an artifact is).

Each export prints one line per artifact (status, format, variant, path, size,
seconds); ``all`` ends with a ✓/✗ table and exits non-zero if anything failed.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from genimg_export.artifacts.formats import DEFAULT_OPSET, FORMATS, OPSETS, format_variants, opt_in_variants
from genimg_export.cli.app import CustomObjectsOpt, ModelOpt, UnsafeOpt, WeightsOpt, app, command, parse_range  # noqa: F401

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Export directory (created if missing).")]
VersionOpt = Annotated[
    int | None,
    typer.Option(min=1, help="SavedModel version number (default: the next after the highest present)."),
]
Int8IoOpt = Annotated[bool, typer.Option("--int8-io", help="int8 TFLite: int8 input/output tensors instead of float.")]
SamplesOpt = Annotated[int | None, typer.Option(min=1, help="int8: calibration samples (default 100; 100+ advised).")]
OpsetOpt = Annotated[
    int | None, typer.Option(min=OPSETS.start, max=OPSETS.stop - 1, help=f"ONNX opset (default {DEFAULT_OPSET}).")
]
NpzOpt = Annotated[
    Path | None,
    typer.Option(help="int8 calibration data: an .npz whose keys are the model's input names."),
]
CalDirOpt = Annotated[
    Path | None,
    typer.Option(help="int8 calibration data: a folder of images (models with one image input)."),
]
InputRangeOpt = Annotated[
    str | None,
    typer.Option(metavar="LOW,HIGH", help="int8 with --calibration-dir: the range the model's image input expects"
                 " (e.g. 0,255 for a TF-Hub model); images are mapped to it (default: the input's declared"
                 " range, else -1,1)."),
]
OutputRangeOpt = Annotated[
    list[str] | None,
    typer.Option(metavar="[NAME=]LOW,HIGH",
                 help="Your model's output value range where it declares none (a TF-Hub-style SavedModel: 0,255):"
                 " LOW,HIGH for every such image output, or NAME=LOW,HIGH. Recorded in the manifest and the files'"
                 " metadata; parity then judges the images over it. Repeatable."),
]
InputSizeOpt = Annotated[
    str | None,
    typer.Option(metavar="HxW", help="H x W of files that cannot take dynamic sizes (default: the model's own)."),
]
BatchOpt = Annotated[
    int | None, typer.Option(min=1, help="Batch of fixed-size SavedModel/ONNX files (default: dynamic; TFLite: 1)."),
]
XlaOpt = Annotated[bool, typer.Option(
    "--xla", help="SavedModel: XLA-compiled signatures (jit_compile=True; XLA compiles once per input shape).")]
_SM = FORMATS["saved_model"]
SavedModelPrecision = Enum("SavedModelPrecision", [(n, n) for n in _SM.variant_names], type=str)
SM_DEFAULT = SavedModelPrecision(_SM.default.name)
PrecisionOpt = Annotated[SavedModelPrecision, typer.Option(
    help=f"SavedModel precision; served as NAME_PRECISION unless {_SM.default.name} (docs/accelerators.md).")]
SmVariantsOpt = Annotated[str | None, typer.Option(
    metavar=",".join(_SM.variant_names), help=f"SavedModel variants to write, comma-separated (default"
    f" {_SM.default.name}; {', '.join(opt_in_variants(_SM.name))} only when named here).")]
ALL = "all"
DEPRECATED = {"onnx": {"none": FORMATS["onnx"].default.name}}  # old spelling -> variant


def _choices(fmt: str, name: str) -> type[Enum]:
    """``--quantize`` choices of a format: its variants (from the table), old spellings, "all"."""
    names = [*FORMATS[fmt].variant_names, *DEPRECATED.get(fmt, {}), ALL]
    return Enum(name, [(n, n) for n in names], type=str)


TFLiteQuant = _choices("tflite", "TFLiteQuant")
OnnxQuant = _choices("onnx", "OnnxQuant")
TFLITE_ALL, ONNX_ALL = TFLiteQuant(ALL), OnnxQuant(ALL)
QuantHelp = "Variant(s) to write."


def _variants(fmt: str, quantize: Enum) -> list[tuple[str, str]]:
    """The (format, variant) pairs a ``--quantize`` choice means; an old spelling is noted on stderr."""
    if quantize.value == ALL:
        return [(fmt, v) for v in FORMATS[fmt].variant_names]
    variant = DEPRECATED.get(fmt, {}).get(quantize.value)
    if variant:
        typer.echo(f"warning: --quantize {quantize.value} is deprecated; use --quantize {variant}", err=True)
        return [(fmt, variant)]
    return [(fmt, quantize.value)]


@command("saved-model")
def saved_model_cmd(model: ModelOpt, out: OutOpt, version: VersionOpt = None, weights: WeightsOpt = None,
                    allow_unsafe: UnsafeOpt = False, input_size: InputSizeOpt = None, batch: BatchOpt = None,
                    precision: PrecisionOpt = SM_DEFAULT, xla: XlaOpt = False,
                    custom_objects: CustomObjectsOpt = None, output_range: OutputRangeOpt = None) -> None:
    """SavedModel for TF Serving: OUT/serving/NAME/VERSION/ plus models.config etc.

    Example: `genimg-export saved-model --model srgan --out out/ --version 2`
    """
    _export(model, out, _saved_model_pairs(precision.value), weights, allow_unsafe, custom_objects=custom_objects,
            output_range=output_range, version=version,
            input_size=input_size, batch=batch, xla=xla or None)


def _saved_model_pairs(names: str) -> list[tuple[str, str]]:
    """``"fp32,bf16"`` -> the SavedModel (format, variant) pairs, checked against the table."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        return [(_SM.name, _SM.default.name)]
    return [p for p in format_variants({_SM.name: wanted}) if p[0] == _SM.name]


@command("tflite")
def tflite_cmd(model: ModelOpt, out: OutOpt,
               quantize: Annotated[TFLiteQuant, typer.Option(help=QuantHelp)] = TFLITE_ALL,
               int8_io: Int8IoOpt = False, calibration_samples: SamplesOpt = None,
               calibration_npz: NpzOpt = None, calibration_dir: CalDirOpt = None, input_range: InputRangeOpt = None,
               weights: WeightsOpt = None, allow_unsafe: UnsafeOpt = False, input_size: InputSizeOpt = None,
               batch: BatchOpt = None,
               custom_objects: CustomObjectsOpt = None, output_range: OutputRangeOpt = None) -> None:
    """TFLite (LiteRT) files: OUT/tflite/NAME.VARIANT.tflite, one per variant.

    Example: `genimg-export tflite --model srgan --out out/ --quantize int8 --int8-io`
    """
    _export(model, out, _variants("tflite", quantize), weights, allow_unsafe, custom_objects=custom_objects,
            output_range=output_range, calibration=(calibration_npz, calibration_dir, input_range),
            strict=quantize.value != ALL, int8_io=int8_io or None,
            calibration_samples=calibration_samples, input_size=input_size, batch=batch)


@command("onnx")
def onnx_cmd(model: ModelOpt, out: OutOpt, opset: OpsetOpt = None,
             quantize: Annotated[OnnxQuant, typer.Option(help=QuantHelp + " (none: old name of fp32)")] = ONNX_ALL,
             calibration_samples: SamplesOpt = None, calibration_npz: NpzOpt = None, calibration_dir: CalDirOpt = None,
             input_range: InputRangeOpt = None,
             weights: WeightsOpt = None, allow_unsafe: UnsafeOpt = False, input_size: InputSizeOpt = None,
             batch: BatchOpt = None, custom_objects: CustomObjectsOpt = None,
             output_range: OutputRangeOpt = None) -> None:
    """ONNX files for onnxruntime: OUT/onnx/NAME.onnx and NAME.int8.onnx (one per signature).

    Example: `genimg-export onnx --model srgan --out out/ --opset 17`
    """
    _export(model, out, _variants("onnx", quantize), weights, allow_unsafe, custom_objects=custom_objects,
            output_range=output_range, calibration=(calibration_npz, calibration_dir, input_range),
            strict=quantize.value != ALL, opset=opset,
            calibration_samples=calibration_samples, input_size=input_size, batch=batch)


@command("all")
def all_cmd(model: ModelOpt, out: OutOpt, version: VersionOpt = None, opset: OpsetOpt = None,
            int8_io: Int8IoOpt = False, calibration_samples: SamplesOpt = None, calibration_npz: NpzOpt = None,
            calibration_dir: CalDirOpt = None, input_range: InputRangeOpt = None, weights: WeightsOpt = None,
            allow_unsafe: UnsafeOpt = False, input_size: InputSizeOpt = None, batch: BatchOpt = None,
            saved_model_variants: SmVariantsOpt = None,
            xla: XlaOpt = False, custom_objects: CustomObjectsOpt = None, output_range: OutputRangeOpt = None) -> None:
    """Every format and variant, then a ✓/✗ table; exits 3 if any artifact failed.

    Example: `genimg-export all --model srgan --out out/ --saved-model-variants fp32,bf16`
    """
    pairs = format_variants()
    if saved_model_variants is not None:
        chosen = _saved_model_pairs(saved_model_variants)
        pairs = [p for p in pairs if p[0] != _SM.name]
        pairs[0:0] = chosen  # SavedModels first: TFLite and ONNX convert from the float32 one
    spec = _export(model, out, pairs, weights, allow_unsafe, custom_objects=custom_objects, output_range=output_range,
            calibration=(calibration_npz, calibration_dir, input_range), table=True, version=version, opset=opset,
            int8_io=int8_io or None, calibration_samples=calibration_samples, input_size=input_size, batch=batch,
            xla=xla or None)
    from genimg_export.cli.triton_commands import after_all

    after_all(spec, out)  # the Triton repository over the ONNX files just written


def _export(model: str, out: Path, pairs, weights, allow_unsafe, calibration=(None, None, None),
            strict: bool = False, table: bool = False, custom_objects=None, output_range=None, **options):
    """Load the model, export ``pairs`` with a progress line, print results, fail if any failed;
    return the spec (so ``all`` need not read the model again for its Triton step).

    ``options`` are those the user set (None: not set); each row gets the ones it takes.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import time

    from rich.console import Console

    from genimg_export.cli import noise
    from genimg_export.cli.app import parse_output_ranges
    from genimg_export.errors import ExportError
    from genimg_export.exporters import pipeline, run_all
    from genimg_export.exporters.saved_model import check_new_version
    from genimg_export.fs import check_out_dir
    from genimg_export.zoo import loading, user

    start = time.perf_counter()
    options = {k: v for k, v in options.items() if v is not None}
    if "input_size" in options:
        options["input_size"] = _parse_size(options["input_size"])
    npz, folder, input_range = calibration
    input_range = _parse_range(input_range) if input_range is not None else None
    output_range = parse_output_ranges(output_range)
    spec = user.with_calibration(loading.get_spec(model, allow_unsafe, custom_objects), npz, folder, input_range)
    spec = user.with_output_range(spec, output_range)  # on the outputs: the manifest and metadata carry it
    _warn_if_few_calibration_samples(spec, pairs)
    check_out_dir(out)  # after the name is known good: an unknown model creates no folder
    pipeline.check_request(spec, pairs, options, strict)
    if any(fmt == "saved_model" for fmt, _ in pairs):  # fail before the slow model load
        check_new_version(out, spec, options.get("version"), [v for f, v in pairs if f == "saved_model"])
    keras_model = loading.load_model(spec, weights, allow_unsafe)
    console = Console(stderr=True, quiet=noise.quiet())
    with console.status(f"exporting {spec.name}") as status:
        def on_outcome(o):  # `all` prints its table at the end, so each artifact once
            if not table:
                status.stop()  # the spinner's line is redrawn below, not merged into ours
                _print_outcome(o, out)
                status.start()

        outcomes = run_all(spec, keras_model, out, pairs, on_outcome=on_outcome,
                           log=lambda message: status.update(f"{spec.name}: {message}"), **options)
    if table:
        _print_table(outcomes, out, time.perf_counter() - start)
    failed = [o for o in outcomes if o.error]
    if failed:
        raise ExportError(f"{len(failed)} of {len(outcomes)} exports failed: " + "; ".join(o.error for o in failed))
    return spec


def _parse_size(text: str) -> tuple[int, int]:
    """``"64x96"`` -> (64, 96); InvalidInputError for anything else."""
    from genimg_export.errors import InvalidInputError

    h, sep, w = text.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit()):
        raise InvalidInputError(f"--input-size must be HxW (e.g. 64x64), got '{text}'")
    return int(h), int(w)


def _fixed_why(a) -> str:
    """What an artifact's line says about its fixed size, and why ("" when it has none)."""
    if not a.fixed_size:
        return ""
    why = (a.options or {}).get("fixed_size_reason")
    return f"  fixed {a.fixed_size[0]}x{a.fixed_size[1]}" + (f": {why}" if why else "")


def _parse_range(text: str) -> tuple[float, float]:
    from genimg_export.errors import InvalidInputError

    lo, hi = parse_range(text)
    if not lo < hi:
        raise InvalidInputError(f"--input-range must be LOW,HIGH with LOW < HIGH (e.g. 0,255), got '{text}'")
    return lo, hi


def _warn_if_few_calibration_samples(spec, pairs) -> None:
    """Full-integer ranges from fewer than the advised samples can be wrong (DESIGN.md): say so."""
    from genimg_export.cli import noise
    from genimg_export.exporters.tflite import MIN_CALIBRATION

    available = spec.extra.get("calibration_available")
    calibrated = any(FORMATS[fmt].variant(v).calibrated for fmt, v in pairs)
    if calibrated and available is not None and available < MIN_CALIBRATION and not noise.quiet():
        typer.secho(f"warning: {available} calibration samples in {spec.extra['calibration']}; {MIN_CALIBRATION}+"
                    " are advised for int8 (fewer can give poor ranges)", err=True, fg=typer.colors.YELLOW)


def _print_outcome(outcome, out: Path) -> None:
    if outcome.skipped:
        typer.echo(f"- {outcome.format:<11} {outcome.variant:<7} skipped: {outcome.skipped}")
    elif outcome.error:
        typer.echo(f"✗ {outcome.format:<11} {outcome.variant:<7} {outcome.error}")
    for a in outcome.artifacts:
        fixed = _fixed_why(a)
        typer.echo(f"✓ {a.format:<11} {a.variant:<7} {Path(out) / a.path}  {_size(a.bytes)}  {a.seconds:.1f} s{fixed}")


def _print_table(outcomes, out: Path, total: float) -> None:
    typer.echo(f"\n{'':2}{'format':<12}{'variant':<9}{'size':>10}{'seconds':>9}  path / reason")
    for o in outcomes:
        mark = "✓" if o.ok else ("-" if o.skipped else "✗")
        if o.artifacts:
            for a in o.artifacts:
                line = f"{mark} {a.format:<12}{a.variant:<9}{_size(a.bytes):>10}{a.seconds:>9.1f}  {a.path}"
                typer.echo(line + _fixed_why(a))
        else:
            typer.echo(f"{mark} {o.format:<12}{o.variant:<9}{'':>10}{o.seconds:>9.1f}  {o.error or o.skipped}")
    ok = sum(o.ok for o in outcomes)
    typer.echo(f"{ok}/{len(outcomes)} exported into {out} in {total:.1f} s; manifest: {Path(out) / 'manifest.json'}")


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


@command("info")
def info_cmd(path: Annotated[Path, typer.Argument(help="An exported file or SavedModel version directory.")]) -> None:
    """Print an artifact's manifest entry, or the metadata embedded in a .tflite/.onnx.

    Example: `genimg-export info out/tflite/srgan.int8.tflite`
    """
    from genimg_export import fs
    from genimg_export.artifacts import manifest
    from genimg_export.errors import NotFoundError

    if not path.exists():
        raise NotFoundError(f"no such file or directory: {path}")
    try:
        out, artifact = manifest.find(path)
    except NotFoundError:
        meta = _embedded(path)
        if meta is None:
            raise NotFoundError(
                f"{path} has no manifest.json entry (searched its parent folders) and no embedded"
                " genimg_export metadata; expected a file written by genimg-export"
            ) from None
        typer.echo(f"# embedded metadata of {path} (no manifest entry)")
        typer.echo(json.dumps(meta, indent=2))
        return
    typer.echo(f"# manifest entry in {out / manifest.MANIFEST}")
    typer.echo(json.dumps(artifact.to_json(), indent=2))
    if fs.sha256_path(path) != artifact.sha256:
        typer.secho(f"warning: {path} changed since export (sha256 differs from the manifest)", err=True,
                    fg=typer.colors.YELLOW)


def _embedded(path: Path):
    """The metadata embedded in a file of a format whose row can read it, else None."""
    from genimg_export.errors import InvalidInputError, first_line

    row = next((f for f in FORMATS.values() if f.suffix and f.suffix == path.suffix and f.read_metadata), None)
    if row is None:
        return None
    try:
        return row.metadata_fn()(path)
    except Exception as e:  # each runtime's reader raises its own types for a damaged file
        raise InvalidInputError(f"{path} is not a readable {row.title} file ({first_line(e)})") from e
