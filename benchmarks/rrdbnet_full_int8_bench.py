"""fp32 vs int8 of the full-size RRDBNet on onnxruntime and LiteRT (issue 13 target), in one process.

The four files (OUT/onnx/rrdbnet{,.int8}.onnx, OUT/tflite/rrdbnet.{fp32,int8}.tflite, fixed 64x64, batch 1)
are opened once through the project's runners with the same thread count, then timed in
alternating rounds (onnx fp32, onnx int8, tflite fp32, tflite int8, repeated), so that the load
of a shared machine falls on every file alike; each round times ``--calls`` calls per file after
one warm-up call; a file's figure is the median over rounds of its per-round median, and the
int8/fp32 speed-up is the median of the per-round ratios.

    python benchmarks/rrdbnet_full_int8_bench.py --model /tmp/h5/rrdbnet.keras --out /tmp/h5/out \\
        --inputs /tmp/h5/parity64.npz --threads 2 --rounds 5 --calls 3 --json benchmarks/rrdbnet_full_int8_t2.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

FILES = {("onnx", "fp32"): "onnx/rrdbnet.onnx", ("onnx", "int8"): "onnx/rrdbnet.int8.onnx",
         ("tflite", "fp32"): "tflite/rrdbnet.fp32.tflite", ("tflite", "int8"): "tflite/rrdbnet.int8.tflite"}


def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    """Over the reference's spread, as parity judges an output with no declared range (RRDBNet's last conv is
    linear)."""
    from genimg_export.parity.metrics import data_range_of

    mse = float(np.mean((out.astype(np.float64) - ref) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range_of(None, ref) ** 2 / mse))


def main() -> None:
    from genimg_export.runners import open_runner
    from genimg_export.zoo import loading

    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--inputs", type=Path, required=True, help=".npz with 'lr' (N, 64, 64, 3) in [0, 1]")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--json", type=Path)
    a = p.parse_args()

    spec = loading.get_spec(a.model)
    feeds = {"lr": np.load(a.inputs)["lr"][:1].astype(np.float32)}
    runners = {k: open_runner(k[0], a.out / f, spec, num_threads=a.threads) for k, f in FILES.items()}
    outputs = {k: next(iter(r.run(feeds).values())) for k, r in runners.items()}  # the warm-up call too
    times: dict = {k: [] for k in FILES}
    for i in range(a.rounds):
        for k, r in runners.items():
            r.run(feeds)
            per_call = []
            for _ in range(a.calls):
                start = time.perf_counter()
                r.run(feeds)
                per_call.append((time.perf_counter() - start) * 1e3)
            times[k].append(statistics.median(per_call))
        print(f"round {i + 1}: " + ", ".join(f"{b}/{v} {times[(b, v)][-1]:.0f} ms" for b, v in FILES), flush=True)
    report = {"model": spec.name, "size": "64x64", "batch": 1, "threads": a.threads, "rounds": a.rounds,
              "calls_per_round": a.calls, "machine": platform.processor() or platform.machine(), "runtimes": {}}
    for backend in ("onnx", "tflite"):
        f32, i8 = times[(backend, "fp32")], times[(backend, "int8")]
        ratios = [x / y for x, y in zip(f32, i8)]
        report["runtimes"][backend] = {
            "fp32_ms_rounds": f32, "int8_ms_rounds": i8, "fp32_ms": statistics.median(f32),
            "int8_ms": statistics.median(i8), "int8_speedup_rounds": ratios, "int8_speedup": statistics.median(ratios),
            "int8_vs_fp32_psnr_db": psnr(outputs[(backend, "int8")], outputs[(backend, "fp32")])}
        r = report["runtimes"][backend]
        print(f"{backend}: fp32 {r['fp32_ms']:.0f} ms, int8 {r['int8_ms']:.0f} ms, int8 x{r['int8_speedup']:.2f}"
              f" (rounds {', '.join(f'{x:.2f}' for x in ratios)}); int8 vs fp32 file PSNR"
              f" {r['int8_vs_fp32_psnr_db']:.1f} dB")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
