"""CLI command: parity (see the module docstring of cli.app for conventions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genimg_export.cli.app import (
    CustomObjectsOpt,
    ModelOpt,
    UnsafeOpt,
    WeightsOpt,
    command,
    parse_output_ranges,
    parse_range,
    renamed,
)

BACKEND_NAMES = "keras, saved_model, tflite, onnx, grpc, rest"  # runners.BACKENDS, without importing it


@command("parity")
def parity(
    model: ModelOpt,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Export directory (as written by `genimg-export all`).")] = None,
    artifacts: Annotated[Path | None, typer.Option(hidden=True, help="Deprecated name of --out.")] = None,
    backends: Annotated[
        list[str] | None,
        typer.Option(help=f"Backends to check, comma-separated or repeated: {BACKEND_NAMES}."
                     " Default: keras and every local backend found in --out."),
    ] = None,
    samples: Annotated[int, typer.Option(help="Samples per input size (at least 8).")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write every row as JSON (stable shape, for CI).")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Write a PNG contact sheet: reference, outputs, |diff| heatmaps.")] = None,
    samples_npz: Annotated[Path | None, typer.Option(help="Inputs to use, an .npz keyed by input name.")] = None,
    input_range: Annotated[str, typer.Option(
        help="LOW,HIGH of random inputs for a user's model without data.")] = "-1,1",
    output_range: Annotated[
        list[str] | None,
        typer.Option(metavar="[NAME=]LO,HI",
                     help="Declare an output's value range where the model does not (a SavedModel):"
                     " NAME=LO,HI, or LO,HI for every image output; images are compared over it. Repeatable."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Threads for the tflite and onnx runners.")] = None,
    grpc_target: Annotated[str, typer.Option(help="HOST:PORT of the gRPC server (backend grpc).")] = "localhost:8500",
    rest_target: Annotated[str, typer.Option(help="HOST:PORT of the REST server (backend rest).")] = "localhost:8501",
    v2_target: Annotated[str, typer.Option(
        help="Triton/KServe address (backend v2): HOST:PORT for gRPC, http://HOST:PORT for HTTP; every model of"
             " OUT/triton/ is checked (<model>, <model>_int8).")] = "localhost:8001",
    tolerance: Annotated[
        list[str] | None,
        typer.Option(metavar="BACKEND/VARIANT=KEY:VALUE",
                     help="Override a variant's tolerance, repeatable: BACKEND/VARIANT=KEY:VALUE[,KEY:VALUE]"
                     " with KEY psnr, ssim, max_abs (image outputs) or atol, rtol (other outputs);"
                     " e.g. --tolerance tflite/int8=psnr:25. Recorded in --json."),
    ] = None,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Every column (shape, mean abs, outside), wider than 80.")] = False,
    weights: WeightsOpt = None,
    allow_unsafe: UnsafeOpt = False,
    custom_objects: CustomObjectsOpt = None,
) -> None:
    """Check every exported artifact against the Keras model on the same seeded inputs.

    Prints one row per backend and output (max/mean abs error, PSNR, SSIM, fraction
    outside tolerance, verdict); exits 0 only when every row passes.

    Example: `genimg-export parity --model srgan --out out/ --report parity.png`
    """
    from genimg_export.cli.noise import spinner
    from genimg_export.cli.zoo_commands import _write_json
    from genimg_export.errors import CheckFailed
    from genimg_export.fs import check_output_file
    from genimg_export.parity import inputs as parity_inputs
    from genimg_export.parity import report as sheet
    from genimg_export.parity import run_parity

    out = renamed(out, artifacts, "--artifacts", "--out")
    check_output_file(json_out, "--json")
    check_output_file(report, "--report")
    if report is not None:
        sheet.check_path(report)
    if threads is not None and threads < 1:
        from genimg_export.errors import InvalidInputError

        raise InvalidInputError(f"--threads must be at least 1, got {threads}")
    npz = parity_inputs.load_npz(samples_npz) if samples_npz is not None else None
    overrides = _tolerances(tolerance)
    with spinner(f"parity {model}") as progress:
        result = run_parity(
            model, out, _split(backends), samples=samples, seed=seed, npz=npz,
            input_range=parse_range(input_range), threads=threads, weights=weights, allow_unsafe=allow_unsafe,
            servers={"grpc": grpc_target, "rest": rest_target, "v2": v2_target}, tolerances=overrides,
            output_ranges=parse_output_ranges(output_range), progress=progress,
        )
    _print(result, wide)
    if json_out is not None:
        _write_json(json_out, result.to_json())
    if report is not None:
        typer.echo(f"wrote {sheet.write_contact_sheet(result, report)}")
    failed = [r for r in result.rows if not r.passed]
    if failed:
        names = ", ".join(dict.fromkeys(f"{r.label} ({r.output}): {r.reason}" for r in failed))
        raise CheckFailed(f"parity failed for {len(failed)} of {len(result.rows)} rows: {names}")
    typer.secho(f"parity {result.model}: all {len(result.rows)} rows pass", fg=typer.colors.GREEN)


def _split(backends: list[str] | None) -> list[str] | None:
    if not backends:
        return None
    return [b.strip() for item in backends for b in item.split(",") if b.strip()]


def _tolerances(items: list[str] | None) -> dict[str, dict]:
    from genimg_export.artifacts.formats import default_tolerances
    from genimg_export.parity.metrics import parse_tolerances

    return parse_tolerances(items, [f"{b}/{v}" for b, v in default_tolerances()])


NARROW_DROPS = ("shape", "mean abs", "outside")  # --wide shows them


def _print(result, wide: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    many = len({r.signature for r in result.rows}) > 1
    reference = "SavedModel" if result.reference == "saved_model" else "Keras"
    table = Table(title=f"parity: {result.model} vs {reference} ({result.samples} samples per size"
                  + (f", sizes {', '.join('x'.join(map(str, s)) for s in result.sizes)})" if result.sizes else ")"))
    columns = ["backend", "variant", *(["signature"] if many else []), "output", "shape", "max abs",
               "mean abs", "PSNR dB", "SSIM", "outside", "verdict"]
    keep = [wide or c not in NARROW_DROPS for c in columns]
    for col, kept in zip(columns, keep):
        if kept:
            numeric = col in ("max abs", "mean abs", "PSNR dB", "SSIM", "outside")
            table.add_column(col, justify="right" if numeric else "left")
    for r in result.rows:
        verdict = "[green]pass[/]" if r.passed else f"[red]FAIL[/] {r.reason}"
        if r.ran and not (r.shape_ok and r.dtype_ok) and not wide:
            verdict += " (shape/dtype mismatch)"
        cells = [
            f"{reference} (reference)" if r.backend == "keras" else r.backend, _variant(r, result.sizes),
            *([r.signature] if many else []), r.output,
            "-" if not r.ran else "ok" if r.shape_ok and r.dtype_ok else "[red]mismatch[/]",
            _num(r.max_abs, ".2e"), _num(r.mean_abs, ".2e"), _num(r.psnr_db, ".1f"), _num(r.ssim, ".4f"),
            _num(r.frac_outside, ".2%"), verdict,
        ]
        table.add_row(*(c for c, kept in zip(cells, keep) if kept))
    console = Console() if not wide else Console(width=max(Console().width, 150))
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    task = result.task_metric
    if task:
        console.print(f"task metric: {task['name']}")
        console.print(f"  keras            {task['keras']:.2f}")
        for row in task["rows"]:
            value = (
                "error: " + row.get("error", "") if row["value"] is None
                else f"{row['value']:.2f}  ({row['delta']:+.2f} vs keras)"
            )
            console.print(f"  {row['backend'] + '/' + row['variant']:<16} {value}")


def _variant(row, sizes) -> str:
    """The variant, with the size it ran at when that is not the header's (a fixed-size export)."""
    own = row.sizes and [list(s) for s in row.sizes] != [list(s) for s in sizes]
    return (row.variant or "-") + (f" @ {', '.join('x'.join(map(str, s)) for s in row.sizes)}" if own else "")


def _num(value, fmt: str) -> str:
    if value is None:
        return "-"
    return "inf" if value == float("inf") else format(value, fmt)
