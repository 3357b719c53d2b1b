"""Benchmarks: latency, throughput, memory and closeness to the machine's peak, per backend.

Every target (backend x variant of one signature) is opened cold, called once,
warmed up, then timed ``runs`` times on the same seeded batch. What is timed is
a compiled function, never ``model.predict``: the Keras model through a
``tf.function`` concrete function at the benchmarked shape, the SavedModel's
signature (a concrete function), the TFLite signature runner (XNNPACK), the
onnxruntime session. Each row carries the model's FLOPs per call (counted from
its graph, see ``peak.count_flops``), the achieved GFLOP/s (GOP/s for int8
variants) as a fraction of this machine's GEMM peak measured in the same run,
and the PSNR of its output against the Keras output on the same inputs, so
that speed and quality are read together.

Example:
    >>> result = run_bench("srgan", Path("out"), ["keras", "tflite"], size=(64, 64), threads=2,
    ...                    weights="srgan.keras")
    >>> [(r.label, r.p50_ms, r.psnr_db) for r in result.rows]
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genimg_export.artifacts.formats import find_variant, runner_options, served_variant
from genimg_export.artifacts.target import Target
from genimg_export.bench import xnnpack
from genimg_export.bench.peak import FLOPS_METHOD, Peak, count_flops, machine, measure_peak, peak_rss_mb, reset_peak_rss
from genimg_export.errors import InvalidInputError, NotFoundError, first_line
from genimg_export.parity import metrics
from genimg_export.parity import run as parity_run
from genimg_export.parity.inputs import MIN_SAMPLES, InputPlan
from genimg_export.runners import open_runner

WARMUP = 3
DEFAULT_SIZE = (64, 64)


@dataclass
class Row:
    """One target's figures (the ``--json`` row; the first eight keys are the stable ones)."""

    backend: str
    variant: str | None
    p50_ms: float | None = None
    p90_ms: float | None = None
    images_per_s: float | None = None
    bytes: int | None = None
    fraction_of_peak: float | None = None
    psnr_db: float | None = None
    cpu_fraction_of_peak: float | None = None
    signature: str = "serving_default"
    min_ms: float | None = None
    cpu_ms: float | None = None
    load_s: float | None = None
    first_call_ms: float | None = None
    peak_rss_mb: float | None = None
    rss_added_mb: float | None = None
    achieved_gops: float | None = None
    max_abs: float | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return self.backend if self.variant is None else f"{self.backend}/{self.variant}"

    def to_json(self) -> dict:
        return {k: _rounded(v) for k, v in asdict(self).items()}


@dataclass
class Result:
    """Everything one bench run measured."""

    model: str
    size: tuple[int, int] | None
    batch: int
    threads: int | None
    runs: int
    peak: Peak
    flops_per_call: int | None
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    serving: dict | None = None

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "size": None if self.size is None else f"{self.size[0]}x{self.size[1]}",
            "threads": self.threads,
            "peak": self.peak.to_json(),
            "rows": [r.to_json() for r in self.rows],
            "batch": self.batch,
            "runs": self.runs,
            "flops_per_call": self.flops_per_call,
            "flops_method": FLOPS_METHOD,
            "machine": machine(),
            "serving": self.serving,
            "notes": self.notes,
        }


def run_bench(
    model: str, artifacts: Path | None, backends: list[str] | None = None, *, size: tuple[int, int] | None = None,
    batch: int = 1, threads: int | None = None, runs: int = 20, signature: str | None = None, weights=None,
    allow_unsafe: bool = False, seed: int = 0, concurrency: int | None = None, grpc_target: str | None = None,
    batching_parameters: Path | None = None, progress=None,
) -> Result:
    """Everything ``genimg-export bench`` does before printing.

    Args:
        model: zoo name or path to a user's model.
        backends: local backends (keras, saved_model, tflite, onnx); None means
            keras and every local backend found in ``artifacts``.
        size: (H, W) for models with dynamic H x W (default: the spec's canonical size).
        weights: the .keras weights the artifacts were exported from (the reference).
        concurrency: also measure the local server (or ``grpc_target``) under this
            many concurrent gRPC clients (the serving mode).
        batching_parameters: BatchingParameters for the serving mode's batched
            server (default: the export's serving/batching_parameters.txt).
        progress: called with a short line as each step starts (the CLI's spinner).
    """
    from genimg_export.runners.discover import discover, local_backends
    from genimg_export.zoo import loading

    check_settings(batch, threads, runs, concurrency)
    notes: list[str] = []
    if not configure_tf_threads(threads):
        notes.append(f"TensorFlow had already started in this process; its thread settings were kept, not {threads}")
    spec = parity_run.as_exported(loading.get_spec(model, allow_unsafe), artifacts)
    sig = spec.signature(signature or spec.default_signature.name)
    size = bench_size(spec, sig, size)
    if backends is None:
        backends = ["keras", *(local_backends(spec, artifacts) if artifacts is not None else [])]
    remote = [b for b in backends if b in ("grpc", "rest")]
    if remote:
        raise InvalidInputError(f"backend {remote[0]} is measured by the serving mode: pass --concurrency C instead")
    targets = [t for t in discover(spec, artifacts, backends) if t.signature == sig.name]
    progress = progress or (lambda line: None)
    progress(f"loading {spec.name}")
    keras_model = _reference_model(spec, weights, allow_unsafe, notes)
    inputs = make_inputs(spec, sig, batch, size, seed, parity_run.recorded_calibration(spec, artifacts))
    flops = count_flops(sig.keras_callable(keras_model or spec.build()), _tensor_specs(sig, inputs))
    progress("measuring this machine's GEMM peak")
    peak = measure_peak(threads)
    reference = None
    if keras_model is not None:
        reference = keras_function(sig, keras_model, inputs)()
    rows = []
    for i, t in enumerate(targets, 1):
        progress(f"timing {t.backend} {t.variant or ''} ({i}/{len(targets)})")
        rows.append(bench_target(spec, t, inputs, size, runs, threads, keras_model, reference, flops, peak))
    notes += xnnpack.notes(targets)  # what runs outside XNNPACK often explains a slow TFLite row
    progress("measuring the peak again")
    peak = peak.best(measure_peak(threads))  # the load on a shared machine changes: keep the best of two
    for row in rows:
        _set_fraction(row, peak)
    result = Result(spec.name, size, batch, threads, runs, peak, flops, rows, notes)
    if concurrency:
        progress(f"serving mode: {concurrency} concurrent clients")
        _bench_serving(result, spec, sig, artifacts, inputs, concurrency, grpc_target, reference, batching_parameters)
    return result


def _bench_serving(result: Result, spec, sig, artifacts, inputs, concurrency: int, target, reference,
                   batching_parameters: Path | None = None) -> None:
    """Add the serving section and a grpc row (at concurrency C) to ``result``."""
    from genimg_export.bench.serving import serving_bench

    local = _in_process_runner(spec, sig, artifacts)
    try:  # the in-process calls the overhead is measured against, alternated with the requests
        in_process = (lambda: local.run(inputs)) if local is not None else None
        section, outputs = serving_bench(spec, sig.name, inputs, result.runs, concurrency, result.threads,
                                         artifacts, target, in_process, batching_parameters)
    finally:
        if local is not None:
            local.close()
    result.serving = section
    level = section["levels"][-1]
    row = Row("grpc", served_variant("grpc"), signature=sig.name, p50_ms=level["p50_ms"], p90_ms=level["p90_ms"],
              images_per_s=level["images_per_s"])
    if result.flops_per_call:
        row.achieved_gops = result.flops_per_call * level["requests_per_s"] / 1e9
        row.fraction_of_peak = row.achieved_gops / result.peak.fp32_gflops
    if reference is not None:
        _fill_parity(spec, Target("grpc", served_variant("grpc"), sig.name, section["target"]), row, reference, outputs)
    result.rows.append(row)


def _in_process_runner(spec, sig, artifacts):
    """The export's SavedModel opened in this process, or None when there is none."""
    from genimg_export.runners.discover import discover, local_backends

    if artifacts is None or "saved_model" not in local_backends(spec, artifacts):
        return None
    target = next(t for t in discover(spec, artifacts, ["saved_model"]) if t.signature == sig.name)
    return open_runner("saved_model", target.artifact, spec, sig.name)


def check_settings(batch: int, threads: int | None, runs: int, concurrency: int | None = None) -> None:
    if batch < 1:
        raise InvalidInputError(f"--batch must be at least 1, got {batch}")
    if threads is not None and threads < 1:
        raise InvalidInputError(f"--threads must be at least 1, got {threads}")
    if runs < 2:
        raise InvalidInputError(f"--runs must be at least 2 (a median needs several timed calls), got {runs}")
    if concurrency is not None and not 1 <= concurrency <= 64:
        raise InvalidInputError(f"--concurrency must be between 1 and 64 clients, got {concurrency}")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"64x64"`` -> (64, 64); one clear error otherwise."""
    if text is None:
        return None
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise InvalidInputError(f"--size must be HxW, e.g. 64x64 or 48x80, got '{text}'") from None
    if h < 1 or w < 1:
        raise InvalidInputError(f"--size must be positive, got '{text}'")
    return h, w


def bench_size(spec, sig, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The (H, W) to run at, checked against the spec; None for models without dynamic H x W."""
    if not any(t.dynamic_spatial for t in sig.inputs):
        if size is not None:
            raise InvalidInputError(f"'{spec.name}' takes fixed-size inputs ({_shapes(sig)}); drop --size")
        return None
    h, w = size or spec.canonical_size or DEFAULT_SIZE
    m = spec.spatial_multiple
    if h % m or w % m:
        raise InvalidInputError(
            f"--size of '{spec.name}' must be a multiple of {m} on each side (e.g. {m * 4}x{m * 4}), got {h}x{w}"
        )
    return h, w


def _shapes(sig) -> str:
    return ", ".join(f"{t.name}: {'x'.join('?' if d is None else str(d) for d in t.shape)}" for t in sig.inputs)


def configure_tf_threads(threads: int | None) -> bool:
    """Intra-op threads = ``threads`` and inter-op = 1, so TF runs one op at a
    time on T threads as onnxruntime and LiteRT do. False when TF has already
    started in this process with other settings (they cannot change then)."""
    if threads is None:
        return True
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        return threading.get_intra_op_parallelism_threads() == threads
    return True


def make_inputs(spec, sig, batch: int, size, seed: int, recorded: dict | None = None) -> dict[str, np.ndarray]:
    """``batch`` seeded samples of the signature's inputs (at ``size`` where H x W is dynamic); for a
    user's model whose export recorded calibration data, that data, as parity feeds it (noise in the
    wrong range made a correct int8 file's PSNR column read 20 dB)."""
    if recorded is not None:
        arrays = InputPlan(spec, max(batch, MIN_SAMPLES), seed, recorded=recorded).inputs(sig.name, size)
        if all(len(a) >= batch for a in arrays.values()):
            return {name: a[:batch] for name, a in arrays.items()}
    if size is None:
        return spec.sample_inputs(batch, seed, sig.name)
    return spec.sample_inputs(batch, seed, sig.name, size)


def _reference_model(spec, weights, allow_unsafe: bool, notes: list[str]):
    from genimg_export.zoo import loading

    try:
        return loading.load_model(spec, weights, allow_unsafe)
    except NotFoundError as e:
        notes.append(f"no reference model, so no keras row and no PSNR ({e})")
        return None


def _tensor_specs(sig, inputs: dict[str, np.ndarray]) -> list:
    import tensorflow as tf

    return [tf.TensorSpec(inputs[t.name].shape, t.dtype, name=t.name) for t in sig.inputs]


def keras_function(sig, keras_model, inputs: dict[str, np.ndarray]) -> Callable[[], dict[str, np.ndarray]]:
    """A call of the Keras (sub)model's concrete function on ``inputs`` (as tensors, made once)."""
    import tensorflow as tf

    fn = sig.keras_callable(keras_model)

    def call(*args):
        out = fn(args[0] if len(args) == 1 else list(args), training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    concrete = tf.function(call).get_concrete_function(*_tensor_specs(sig, inputs))
    tensors = [tf.constant(inputs[t.name]) for t in sig.inputs]
    names = [t.name for t in sig.outputs]
    return lambda: {n: v.numpy() for n, v in zip(names, concrete(*tensors))}


def bench_target(spec, target: Target, inputs, size, runs: int, threads, keras_model, reference, flops, peak) -> Row:
    """Open ``target`` cold, call it once, warm up, time ``runs`` calls; errors become the row's ``error``."""
    row = Row(target.backend, target.variant, signature=target.signature, bytes=artifact_bytes(target.artifact))
    if target.fixed_size and size and tuple(target.fixed_size) != tuple(size):
        fixed = f"{target.fixed_size[0]}x{target.fixed_size[1]}"
        row.error = f"exported at the fixed size {fixed}; run with --size {fixed}"
        return row
    if target.backend == "keras" and keras_model is None:
        row.error = "no Keras model to run (pass --weights)"
        return row
    runner = None
    reset_peak_rss()
    before = peak_rss_mb()
    try:
        start = time.perf_counter()
        if target.backend == "keras":
            call = keras_function(spec.signature(target.signature), keras_model, inputs)
        else:
            options = runner_options(target.backend, threads)
            runner = open_runner(target.backend, target.artifact, spec, target.signature, **options)
            call = lambda: runner.run(inputs)  # noqa: E731
        row.load_s = time.perf_counter() - start
        start = time.perf_counter()
        outputs = call()
        row.first_call_ms = (time.perf_counter() - start) * 1e3
        times, cpu_times = time_calls(call, runs)
    except Exception as e:  # one broken backend must not hide the others' figures
        row.error = f"{type(e).__name__}: {first_line(e)}"
        return row
    finally:
        if runner is not None:
            runner.close()
    row.peak_rss_mb = peak_rss_mb()
    row.rss_added_mb = row.peak_rss_mb - before
    fill_timings(row, times, len(next(iter(inputs.values()))), flops, peak, cpu_times)
    if reference is not None:
        _fill_parity(spec, target, row, reference, outputs)
    return row


def time_calls(call: Callable, runs: int, warmup: int = WARMUP) -> tuple[list[float], list[float]]:
    """Wall seconds and process CPU seconds of each of ``runs`` calls after ``warmup`` untimed ones.

    CPU time is what the call cost whatever else the machine was doing: at one
    thread it is the robust figure on a shared machine (at more threads it also
    counts the worker threads' spinning).
    """
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def fill_timings(row: Row, times: list[float], batch: int, flops: int | None, peak: Peak,
                 cpu_times: list[float] | None = None) -> None:
    p50 = statistics.median(times)
    if cpu_times:
        row.cpu_ms = statistics.median(cpu_times) * 1e3
    row.p50_ms, row.p90_ms, row.min_ms = p50 * 1e3, float(np.percentile(times, 90)) * 1e3, min(times) * 1e3
    row.images_per_s = batch / p50
    if flops:
        row.achieved_gops = flops / p50 / 1e9
        _set_fraction(row, peak)


def _set_fraction(row: Row, peak: Peak) -> None:
    """Achieved over peak: the int8 GEMM peak for integer variants, the fp32 one otherwise;
    per wall second, and per CPU second (the robust one on a shared machine)."""
    variant = find_variant(row.backend, row.variant)
    integer = variant is not None and variant.integer_kernels  # compare with the int8 GEMM peak
    if row.achieved_gops is not None:
        limit = peak.int8_gops if integer else peak.fp32_gflops
        row.fraction_of_peak = row.achieved_gops / limit if limit else None
    if row.cpu_ms and row.achieved_gops is not None:
        limit = peak.int8_gops_per_cpu_s if integer else peak.fp32_gflops_per_cpu_s
        per_cpu_s = row.achieved_gops * row.p50_ms / row.cpu_ms
        row.cpu_fraction_of_peak = per_cpu_s / limit if limit else None


def _fill_parity(spec, target: Target, row: Row, reference: dict, outputs: dict) -> None:
    """PSNR and max abs error of the first image output (else the first output) against Keras."""
    sig = spec.signature(target.signature)
    tensor = next((t for t in sig.outputs if t.is_image), sig.outputs[0])
    ref, got = np.asarray(reference[tensor.name]), np.asarray(outputs.get(tensor.name))
    if got.shape != ref.shape:
        row.error = f"output {tensor.name} has shape {got.shape}, the reference {ref.shape}"
        return
    data_range = metrics.data_range_of(tensor.value_range, ref)
    cmp = metrics.compare([ref], [got], data_range, None, image=False)
    row.psnr_db, row.max_abs = cmp.psnr_db, cmp.max_abs


def artifact_bytes(artifact) -> int | None:
    """Size on disk of a file or directory artifact (None for the in-memory Keras model)."""
    if artifact is None:
        return None
    path = Path(artifact)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else None



def _rounded(v):
    """Six significant digits (a 0.03 ms call keeps its precision); JSON has no inf/nan."""
    if isinstance(v, float):
        return float(f"{v:.6g}") if math.isfinite(v) else None
    return v
