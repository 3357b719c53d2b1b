"""srgan with per-channel vs shared-alpha PReLU, side by side in one process.

onnxruntime and TFLite, fp32 and int8 files of both exports, 64x64 input, 2
threads, through the project's runners. Every round times each of the 8 files
in turn (the two models' files of one kind next to each other), so load on a
shared machine hits both alike; the figures are medians over the rounds, and
each int8 speed-up is the median of the per-round fp32/int8 ratios.

Usage (two export folders written by `genimg-export tflite/onnx --weights ...`):
    .venv/bin/python benchmarks/srgan_shared_prelu_bench.py /tmp/h1/old /tmp/h1/new \\
        --json benchmarks/srgan_shared_prelu_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

FILES = {
    ("onnx", "fp32"): "onnx/srgan.onnx",
    ("onnx", "int8"): "onnx/srgan.int8.onnx",
    ("tflite", "fp32"): "tflite/srgan.fp32.tflite",
    ("tflite", "int8"): "tflite/srgan.int8.tflite",
}


def _time(runner, x, calls: int) -> float:
    """Median ms of ``calls`` calls."""
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        runner.run(x)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def main() -> None:
    from genimg_export.runners import open_runner
    from genimg_export.zoo import registry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("channel", type=Path, help="export folder of the per-channel srgan")
    p.add_argument("shared", type=Path, help="export folder of the shared-alpha srgan")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    spec = registry.get("srgan")
    x = spec.sample_inputs(1, seed=0, size=(64, 64))
    folders = {"channel": args.channel, "shared": args.shared}
    runners = {
        (form, *kind): open_runner(kind[0], folders[form] / rel, spec, num_threads=args.threads)
        for kind, rel in FILES.items() for form in folders
    }
    for runner in runners.values():
        _time(runner, x, 3)  # warm-up
    rounds: dict[str, list[float]] = {"/".join(k): [] for k in runners}
    for r in range(args.rounds):
        order = list(runners) if r % 2 == 0 else list(reversed(list(runners)))
        for key in order:
            rounds["/".join(key)].append(_time(runners[key], x, args.calls))
        print(f"round {r + 1}/{args.rounds}: " + " ".join(f"{k}={v[-1]:.1f}" for k, v in rounds.items()), flush=True)
    result = _summary(rounds, args)
    print(json.dumps(result["median_ms"], indent=1), json.dumps(result["int8_speedup"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _summary(rounds: dict[str, list[float]], args) -> dict:
    speedup = {}
    for form in ("channel", "shared"):
        for backend in ("onnx", "tflite"):
            ratios = np.array(rounds[f"{form}/{backend}/fp32"]) / np.array(rounds[f"{form}/{backend}/int8"])
            speedup[f"{form}/{backend}"] = round(float(np.median(ratios)), 2)
    return {
        "model": "srgan", "size": "64x64", "threads": args.threads, "rounds": args.rounds, "calls": args.calls,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        "median_ms": {k: round(float(np.median(v)), 2) for k, v in rounds.items()},
        "int8_speedup": speedup,
        "rounds_ms": {k: [round(t, 2) for t in v] for k, v in rounds.items()},
        "folders": {"channel": str(args.channel), "shared": str(args.shared)},
    }


if __name__ == "__main__":
    main()
