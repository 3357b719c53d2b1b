"""The two sides of a roofline: what the machine can do, what the model asks for
(and the process's peak memory while it does it).

``measure_peak`` times a large fp32 GEMM and a large int8 GEMM (onnxruntime's
MatMul and MatMulInteger, i.e. MLAS's sgemm and u8s8 kernels, the ones its
convolutions use) at the thread count being benchmarked; ``count_flops``
counts the floating-point operations of one call of a Keras (sub)model at a
fixed input shape, from its frozen TensorFlow graph with the TF profiler (a
multiply-add is 2 FLOPs; Conv2D, MatMul, BiasAdd and elementwise ops are
counted, data movement such as depth_to_space is not).

Example:
    >>> peak = measure_peak(threads=2)
    >>> peak.fp32_gflops, peak.int8_gops
    (140.2, 251.7)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GEMM_N = 1024  # 2.1 GFLOP per call: long enough to time, short enough for CI
PEAK_CALLS = 8
FLOPS_METHOD = "tf.compat.v1.profiler float_ops on the frozen concrete function at the benchmarked shape"


@dataclass(frozen=True)
class Peak:
    """Best observed GEMM throughput of this machine at ``threads`` threads."""

    fp32_gflops: float
    int8_gops: float
    threads: int | None
    method: str
    fp32_gflops_per_cpu_s: float = 0.0  # the same per second of process CPU time: what the
    int8_gops_per_cpu_s: float = 0.0  # cores deliver when they run, whatever else shares them

    def best(self, other: Peak) -> Peak:
        """The higher of two measurements of each figure (e.g. before and after the rows)."""
        return Peak(max(self.fp32_gflops, other.fp32_gflops), max(self.int8_gops, other.int8_gops),
                    self.threads, self.method + "; best of the measurements before and after the backends",
                    max(self.fp32_gflops_per_cpu_s, other.fp32_gflops_per_cpu_s),
                    max(self.int8_gops_per_cpu_s, other.int8_gops_per_cpu_s))

    def to_json(self) -> dict:
        return {"fp32_gflops": round(self.fp32_gflops, 2), "int8_gops": round(self.int8_gops, 2),
                "fp32_gflops_per_cpu_s": round(self.fp32_gflops_per_cpu_s, 2),
                "int8_gops_per_cpu_s": round(self.int8_gops_per_cpu_s, 2),
                "threads": self.threads, "method": self.method}


def measure_peak(threads: int | None = None, n: int = GEMM_N, calls: int = PEAK_CALLS) -> Peak:
    """Time an n x n x n GEMM in fp32 and in int8 (u8 x s8 -> s32); best of ``calls``.

    The best call, not the median, because a peak is what the hardware can do
    when nothing else runs; on a shared machine the median understates it.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    a32, b32 = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    a8 = rng.integers(0, 256, (n, n), dtype=np.uint8)
    b8 = rng.integers(-128, 128, (n, n), dtype=np.int8)
    fp32_session = _session(ort, _gemm_model("MatMul", 1, 1), threads)
    int8_session = _session(ort, _gemm_model("MatMulInteger", 2, 3), threads)
    fp32, fp32_cpu = _best_ops_per_s(fp32_session, {"a": a32, "b": b32}, n, calls)
    int8, int8_cpu = _best_ops_per_s(int8_session, {"a": a8, "b": b8}, n, calls)
    method = (f"onnxruntime {ort.__version__} MatMul fp32 and MatMulInteger u8s8 (MLAS), {n}x{n}x{n},"
              f" best of {calls} calls")
    return Peak(fp32 / 1e9, int8 / 1e9, threads, method, fp32_cpu / 1e9, int8_cpu / 1e9)


def _gemm_model(op: str, a_type: int, b_type: int):
    """A one-node ONNX model ``y = op(a, b)``; types are onnx.TensorProto codes
    (1 float, 2 uint8, 3 int8)."""
    from onnx import TensorProto, helper

    out_type = TensorProto.FLOAT if op == "MatMul" else TensorProto.INT32
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])], "gemm",
        [helper.make_tensor_value_info("a", a_type, ["n", "k"]),
         helper.make_tensor_value_info("b", b_type, ["k", "m"])],
        [helper.make_tensor_value_info("y", out_type, ["n", "m"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every onnxruntime still reads (onnx may default newer)
    return model.SerializeToString()


def _session(ort, model_bytes: bytes, threads: int | None):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _best_ops_per_s(session, feeds: dict, n: int, calls: int) -> tuple[float, float]:
    """Operations per wall second and per process-CPU second, best call of each."""
    session.run(None, feeds)  # first call packs and allocates
    best = best_cpu = float("inf")
    for _ in range(calls):
        start, start_cpu = time.perf_counter(), time.process_time()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, max(time.process_time() - start_cpu, 1e-9))
    return 2.0 * n**3 / best, 2.0 * n**3 / best_cpu


def count_flops(fn, input_specs: list) -> int:
    """FLOPs of one call of ``fn`` (a Keras model or layer) on inputs of the given
    ``tf.TensorSpec``s (fully defined shapes, batch included).

    Args:
        fn: called as ``fn(x, training=False)`` (one input) or ``fn([x, y], training=False)``.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    def call(*args):
        return fn(args[0] if len(args) == 1 else list(args), training=False)

    concrete = tf.function(call).get_concrete_function(*input_specs)
    frozen = convert_variables_to_constants_v2(concrete)
    profiler = tf.compat.v1.profiler
    options = profiler.ProfileOptionBuilder(profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the v1 profiler warns that it is a v1 API on every call
    try:
        return int(profiler.profile(frozen.graph, options=options).total_float_ops)
    finally:
        logger.setLevel(level)


def reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux or not allowed: the peak is then the process's since it started


def peak_rss_mb() -> float:
    """Peak resident memory of this process since the last reset, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    """What the figures were measured on."""
    import os
    import platform

    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
                 platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo() if line.startswith("flags")), [])
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {"cpu": model, "cpus": os.cpu_count(), "simd": simd, "platform": platform.platform()}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
