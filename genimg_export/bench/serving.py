"""Serving mode of ``genimg-export bench``: the local server under C concurrent gRPC clients.

The local server (``genimg_serving``) is started in a child process on
loopback, with TF at the benchmarked thread count, serving the export's
``serving/<name>``; or an already running server is measured (``target``).
Each of C client threads has its own channel; all send the same request
``runs`` times after a warm-up. Measured at concurrency 1 and at C (p50/p99
latency, requests/s). At concurrency 1 each request alternates with an
in-process call of the same SavedModel on the same batch, so the overhead
figure compares calls made under the same machine load. A second local server
with server-side batching (the export's ``batching_parameters.txt``) is then
measured at C, alternating with the first, for the batching speedup.

Run as ``python -m genimg_export.bench.serving BASE_PATH NAME THREADS BATCHING_FILE|""`` it is
that child: it prints ``port N`` once serving and stops when stdin closes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from genimg_export.errors import GenimgError, NotFoundError
from genimg_serving.configs import BATCHING_FILE

START_TIMEOUT_S = 180.0
CLIENT_WARMUP = 2
BATCHING_ROUNDS = 3


def serving_bench(spec, signature: str, inputs: dict, runs: int, concurrency: int, threads: int | None,
                  artifacts: Path | None, target: str | None, in_process=None,
                  batching_parameters: Path | None = None) -> tuple[dict, dict]:
    """The ``serving`` section of the bench result: latencies at concurrency 1 and C and,
    for the local server, requests/s at C without and with server-side batching; and the
    server's outputs for ``inputs`` (for the parity figure).

    Args:
        in_process: a call of the same model in this process (``() -> outputs``),
            alternated with the requests at concurrency 1; None: no overhead figure.
        batching_parameters: BatchingParameters text for the batched server
            (default: the export's serving/batching_parameters.txt).
    """
    from genimg_export.runners import open_runner

    server = batched = None
    if target is None:
        server = LocalServer(_base_path(spec, artifacts), spec.name, threads)
        target = server.start()
    try:
        with open_runner("grpc", target, spec, signature) as runner:
            outputs = runner.run(inputs)
        levels = [measure_level(spec, signature, target, inputs, runs, c, in_process if c == 1 else None)
                  for c in sorted({1, concurrency})]
        batching = {"compared": False, "note": "measured only on the local server, not with --grpc-target"}
        parameters = Path(batching_parameters or server.base_path.parent / BATCHING_FILE) if server else None
        if parameters is not None and not parameters.is_file():
            batching["note"] = f"no {parameters} to batch with (pass --batching-parameters-file FILE)"
        elif parameters is not None:
            batched = LocalServer(server.base_path, spec.name, threads, batching=parameters)
            batching = compare_batching(spec, signature, (target, batched.start()), inputs, runs, concurrency)
            batching["parameters_file"] = str(parameters)
    finally:
        for s in (server, batched):
            if s is not None:
                s.stop()
    section = {
        "target": target,
        "server": "local genimg_serving in a child process" if server else "given --grpc-target",
        "batch": len(next(iter(inputs.values()))),
        "levels": levels,
        "in_process_p50_ms": levels[0].pop("in_process_p50_ms", None),
        "overhead_p50": None,
        "batching": batching,
    }
    if section["in_process_p50_ms"]:
        section["overhead_p50"] = round(levels[0]["p50_ms"] / section["in_process_p50_ms"] - 1.0, 4)
    return section, outputs


def compare_batching(spec, signature: str, targets: tuple[str, str], inputs: dict, runs: int,
                     concurrency: int) -> dict:
    """Requests/s at ``concurrency`` without and with server-side batching (``targets``:
    the two servers), alternated ``BATCHING_ROUNDS`` times so both see the same machine
    load; the speedup is the ratio of the medians."""
    off, on = [], []
    for _ in range(BATCHING_ROUNDS):
        for target, into in zip(targets, (off, on)):
            into.append(measure_level(spec, signature, target, inputs, runs, concurrency))
    rates = {name: [lv["requests_per_s"] for lv in levels] for name, levels in (("off", off), ("on", on))}
    return {
        "compared": True,
        "concurrency": concurrency,
        "rounds": BATCHING_ROUNDS,
        "requests_per_s_off": rates["off"],
        "requests_per_s_on": rates["on"],
        "p50_ms_off": statistics.median(lv["p50_ms"] for lv in off),
        "p50_ms_on": statistics.median(lv["p50_ms"] for lv in on),
        "speedup": round(statistics.median(rates["on"]) / statistics.median(rates["off"]), 3),
    }


def measure_level(spec, signature: str, target: str, inputs: dict, runs: int, concurrency: int,
                  alongside=None) -> dict:
    """``concurrency`` client threads, each sending ``runs`` requests after a warm-up.

    ``alongside`` (concurrency 1 only) is called and timed before each request;
    its p50 is returned as ``in_process_p50_ms``.
    """
    if alongside is not None and concurrency != 1:
        raise ValueError("alongside calls are for concurrency 1")
    from genimg_export.runners import open_runner

    runners = [open_runner("grpc", target, spec, signature) for _ in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in runners]
    beside: list[float] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(concurrency + 1)

    def client(i: int) -> None:
        try:
            for _ in range(CLIENT_WARMUP):
                runners[i].run(inputs)
        except BaseException as e:  # reported after the others finish
            errors.append(e)
        barrier.wait()
        if errors:
            return
        for _ in range(runs):
            if alongside is not None:
                start = time.perf_counter()
                alongside()
                beside.append(time.perf_counter() - start)
            start = time.perf_counter()
            try:
                runners[i].run(inputs)
            except BaseException as e:
                errors.append(e)
                return
            latencies[i].append(time.perf_counter() - start)

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start - sum(beside)
    for r in runners:
        r.close()
    if errors:
        raise errors[0]
    flat = [t for per in latencies for t in per]
    batch = len(next(iter(inputs.values())))
    level = {
        "concurrency": concurrency,
        "requests": len(flat),
        "p50_ms": round(statistics.median(flat) * 1e3, 3),
        "p90_ms": round(float(np.percentile(flat, 90)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(flat, 99)) * 1e3, 3),
        "requests_per_s": round(len(flat) / wall, 3),
        "images_per_s": round(len(flat) * batch / wall, 3),
    }
    if beside:
        level["in_process_p50_ms"] = round(statistics.median(beside) * 1e3, 3)
    return level


def _base_path(spec, artifacts: Path | None) -> Path:
    if artifacts is None:
        raise NotFoundError(
            "the serving mode needs --out DIR (its serving/<name>/ is served) or --grpc-target HOST:PORT"
        )
    base = Path(artifacts) / "serving" / spec.name
    if not base.is_dir() or not any((p / "saved_model.pb").exists() for p in base.iterdir()):
        raise NotFoundError(
            f"no SavedModel versions of '{spec.name}' in {base}"
            f" (export one with: genimg-export all --model {spec.name} --out {artifacts})"
        )
    return base


class LocalServer:
    """The local server in a child process, on a free loopback port."""

    def __init__(self, base_path: Path, name: str, threads: int | None, batching: Path | None = None):
        self.base_path = Path(base_path)
        self.args = [sys.executable, "-m", "genimg_export.bench.serving", str(base_path), name, str(threads or 0),
                     str(batching or "")]
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        line = _read_line(self.proc.stdout, START_TIMEOUT_S)
        if not line.startswith("port "):
            err = self.stop()
            raise GenimgError(
                f"the local server did not start: {line.strip() or err.strip().splitlines()[-1:] or 'no output'}"
            )
        return f"127.0.0.1:{line.split()[1]}"

    def stop(self) -> str:
        """Stop the child; returns what it wrote to stderr."""
        if self.proc is None:
            return ""
        try:
            _, err = self.proc.communicate(input="", timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        return err or ""


def _read_line(stream, timeout: float) -> str:
    """One line from ``stream``, or "" after ``timeout`` seconds."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


def _child(base_path: str, name: str, threads: int, batching: str) -> None:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from genimg_serving.configs import single_model
    from genimg_serving.server import ModelServer, read_batching_parameters

    server = ModelServer(single_model(name, Path(base_path)), grpc_port=0, rest_port=None, poll_seconds=0,
                         batching=read_batching_parameters(Path(batching)) if batching else None).start()
    print(f"port {server.grpc_port}", flush=True)
    sys.stdin.read()  # serve until the parent closes stdin
    server.stop(grace=1.0)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
