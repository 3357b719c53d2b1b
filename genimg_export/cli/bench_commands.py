"""CLI command: bench (see the module docstring of cli.app for conventions)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Annotated

import typer

from genimg_export.cli.app import CustomObjectsOpt, ModelOpt, UnsafeOpt, WeightsOpt, command, renamed

LOCAL_BACKENDS = "keras, saved_model, tflite, onnx"  # runners.BACKENDS without the servers, without importing it


@command("bench")
def bench(
    model: ModelOpt,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Export directory (as written by `genimg-export all`).")] = None,
    artifacts: Annotated[Path | None, typer.Option(hidden=True, help="Deprecated name of --out.")] = None,
    backends: Annotated[
        list[str] | None,
        typer.Option(help=f"Backends to time, comma-separated or repeated: {LOCAL_BACKENDS}."
                     " Default: keras and every local backend found in --out."),
    ] = None,
    size: Annotated[str | None, typer.Option(
        help="HxW input size for models with dynamic H x W (default: the model's canonical size, e.g. 64x64).")] = None,
    batch: Annotated[int, typer.Option(help="Samples per call.")] = 1,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads: TF intra-op, onnxruntime intra-op, TFLite num_threads.")] = None,
    runs: Annotated[int, typer.Option(help="Timed calls per backend, after a warm-up.")] = 20,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write the results as JSON (stable shape, for CI and benchmarks/).")] = None,
    signature: Annotated[str | None, typer.Option(help="Signature to time (default: serving_default).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        help="Serving mode: also measure the local server (started on loopback from --out) under this many"
             " concurrent gRPC clients: p50/p99, requests/s, overhead against in-process.")] = None,
    grpc_target: Annotated[str | None, typer.Option(
        help="Serving mode against an already running server at HOST:PORT.")] = None,
    batching_parameters_file: Annotated[Path | None, typer.Option(
        help="Serving mode: BatchingParameters for the batched local server that is compared with the"
             " unbatched one (default: OUT/serving/batching_parameters.txt).")] = None,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Every column (p90, CPU ms, load s, GOP/s, fractions of peak), wider than 80.")] = False,
    weights: WeightsOpt = None,
    allow_unsafe: UnsafeOpt = False,
    custom_objects: CustomObjectsOpt = None,
    by_node: Annotated[bool, typer.Option(
        "--by-node", help="Instead: per-node times of the ONNX int8 file against its fp32 one (onnxruntime's"
                          " profiler, each node's fastest of --runs), the nodes slower in int8 first.")] = False,
) -> None:
    """Time every backend on the same seeded batch: latency, images/s, memory, FLOPs and
    the fraction of this machine's measured GEMM peak, with the parity PSNR next to it.

    Example: `genimg-export bench --model srgan --out out/ --size 64x64 --threads 2 --json bench.json`
    """
    from genimg_export.bench.run import check_settings, parse_size, run_bench
    from genimg_export.cli.noise import spinner
    from genimg_export.cli.parity_commands import _split
    from genimg_export.cli.zoo_commands import _write_json
    from genimg_export.errors import InvalidInputError
    from genimg_export.fs import check_output_file

    out = renamed(out, artifacts, "--artifacts", "--out")
    check_settings(batch, threads, runs, concurrency)
    if grpc_target is not None and concurrency is None:
        raise InvalidInputError("--grpc-target is for the serving mode: add --concurrency C (e.g. --concurrency 8)")
    check_output_file(json_out, "--json")
    if by_node:
        _by_node(model, out, parse_size(size), threads, runs, allow_unsafe, json_out)
        return
    with spinner(f"bench {model}") as progress:
        result = run_bench(
            model, out, _split(backends), size=parse_size(size), batch=batch, threads=threads, runs=runs,
            signature=signature, weights=weights, allow_unsafe=allow_unsafe, concurrency=concurrency,
            grpc_target=grpc_target, batching_parameters=batching_parameters_file, progress=progress,
        )
    _print(result, wide)
    if json_out is not None:
        _write_json(json_out, result.to_json())


def _by_node(model, out, size, threads, runs, allow_unsafe, json_out) -> None:
    from genimg_export.bench.by_node import for_export
    from genimg_export.cli.zoo_commands import _write_json

    rows = for_export(model, out or Path("out"), size, threads, runs, allow_unsafe)
    typer.echo(f"{'node':<44}{'fp32 op':<12}{'int8 op':<14}{'fp32 ms':>9}{'int8 ms':>9}")
    for r in rows:
        mark = "  slower in int8" if r.slower_in_int8 else ""
        typer.echo(f"{r.node[:43]:<44}{r.fp32_op:<12}{r.int8_op:<14}{r.fp32_ms:>9.3f}{r.int8_ms:>9.3f}{mark}")
    typer.echo(f"{'total':<70}{sum(r.fp32_ms for r in rows):>9.3f}{sum(r.int8_ms for r in rows):>9.3f}")
    if json_out is not None:
        _write_json(json_out, {"by_node": [r.to_json() for r in rows]})


NARROW = ("backend", "variant", "p50 ms", "img/s", "size", "RSS MiB", "PSNR dB", "note")  # without --wide


def _print(result, wide: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    peak = result.peak
    size = "" if result.size is None else f" {result.size[0]}x{result.size[1]},"
    table = Table(title=f"bench: {result.model},{size} batch {result.batch}, threads {result.threads or 'default'},"
                  f" {result.runs} runs; peak fp32 {peak.fp32_gflops:.1f} GFLOP/s, int8 {peak.int8_gops:.1f} GOP/s"
                  f" (per CPU second: {peak.fp32_gflops_per_cpu_s:.1f}, {peak.int8_gops_per_cpu_s:.1f})")
    columns = ["backend", "variant", "p50 ms", "p90 ms", "CPU ms", "img/s", "size", "load s", "RSS MiB", "GOP/s",
               "of peak", "CPU: of peak", "PSNR dB", "note"]
    keep = [wide or c in NARROW for c in columns]
    for col, kept in zip(columns, keep):
        if kept:
            table.add_column(col, justify="left" if col in ("backend", "variant", "note") else "right")
    for r in result.rows:
        cells = (
            r.backend, r.variant or "-", _num(r.p50_ms, ".1f"), _num(r.p90_ms, ".1f"), _num(r.cpu_ms, ".1f"),
            _num(r.images_per_s, ".1f"),
            _bytes(r.bytes), _num(r.load_s, ".2f"), _num(r.peak_rss_mb, ".0f"), _num(r.achieved_gops, ".1f"),
            _num(r.fraction_of_peak, ".0%"), _num(r.cpu_fraction_of_peak, ".0%"),
            _num(r.psnr_db, ".1f") if r.psnr_db != float("inf") else "inf",
            f"[red]{r.error}[/]" if r.error else "",
        )
        table.add_row(*(c for c, kept in zip(cells, keep) if kept))
    console = Console(width=200) if wide else Console()
    console.print(table)
    if result.flops_per_call:
        console.print(f"FLOPs per call: {result.flops_per_call / 1e9:.3f} G (counted from the graph)")
    serving = result.serving
    if serving:
        for level in serving["levels"]:
            console.print(f"serving {serving['target']}: concurrency {level['concurrency']}:"
                          f" p50 {level['p50_ms']:.1f} ms,"
                          f" p99 {level['p99_ms']:.1f} ms, {level['requests_per_s']:.1f} requests/s")
        if serving["overhead_p50"] is not None:
            console.print(f"serving overhead at p50 vs in-process SavedModel ({serving['in_process_p50_ms']:.1f} ms):"
                          f" {serving['overhead_p50']:+.0%}")
        batching = serving["batching"]
        if batching["compared"]:
            console.print(f"server-side batching ({batching['parameters_file']}),"
                          f" concurrency {batching['concurrency']}:"
                          f" {statistics.median(batching['requests_per_s_on']):.1f} vs"
                          f" {statistics.median(batching['requests_per_s_off']):.1f} requests/s unbatched,"
                          f" x{batching['speedup']:.2f} (median of {batching['rounds']} alternated rounds);"
                          f" p50 {batching['p50_ms_on']:.1f} vs {batching['p50_ms_off']:.1f} ms")
            if batching.get("server_cpu_ratio") is not None:
                sizes = [s for s in batching["mean_batch_size_on"] if s is not None]
                on, off = (statistics.median(batching[f"server_cpu_ms_per_request_{k}"]) for k in ("on", "off"))
                console.print(f"server CPU per request: {on:.2f} ms batched vs {off:.2f}"
                              f" ms unbatched, x{batching['server_cpu_ratio']:.2f} less"
                              + (f"; mean batch {statistics.median(sizes):.1f} requests" if sizes else ""))
        else:
            console.print(f"[yellow]note:[/] batching not compared: {batching['note']}")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
