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

For a local server each level also reports the server's CPU time per request:
the child's user+sys time from ``/proc/<pid>/stat`` over exactly the measured
requests (warm-ups and channel set-up left out), divided by their number
(/proc counts 10 ms clock ticks: rounds of a few hundred requests, e.g. ``--runs
300``, keep that rounding to a few per cent). The clients share the machine's
cores with the server, so throughput alone hides what batching saves; the
server's CPU does not.

Run as ``python -m genimg_export.bench.serving BASE_PATH NAME THREADS BATCHING_FILE|""`` it is
that child: it prints ``port N`` once serving, answers each ``counters`` line on
stdin with one ``counters {json}`` line (batches and rows run by its batcher,
its own ``process_time``), and stops when stdin closes.
"""

from __future__ import annotations

import json
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
        probe = server.snapshot if server else None
        levels = [measure_level(spec, signature, target, inputs, runs, c, in_process if c == 1 else None, probe)
                  for c in sorted({1, concurrency})]
        batching = {"compared": False, "note": "measured only on the local server, not with --grpc-target"}
        parameters = Path(batching_parameters or server.base_path.parent / BATCHING_FILE) if server else None
        if parameters is not None and not parameters.is_file():
            batching["note"] = f"no {parameters} to batch with (pass --batching-parameters-file FILE)"
        elif parameters is not None:
            batched = LocalServer(server.base_path, spec.name, threads, batching=parameters)
            batched.start()
            batching = compare_batching(spec, signature, (server, batched), inputs, runs, concurrency)
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


def compare_batching(spec, signature: str, servers: tuple[LocalServer, LocalServer], inputs: dict, runs: int,
                     concurrency: int) -> dict:
    """Requests/s and server CPU per request at ``concurrency`` without and with server-side
    batching (``servers``: the two, started), alternated ``BATCHING_ROUNDS`` times so both
    see the same machine load; the speedup and the CPU ratio are ratios of the medians."""
    off, on = [], []
    for _ in range(BATCHING_ROUNDS):
        for server, into in zip(servers, (off, on)):
            into.append(measure_level(spec, signature, server.target, inputs, runs, concurrency,
                                      probe=server.snapshot))
    rates = {name: [lv["requests_per_s"] for lv in levels] for name, levels in (("off", off), ("on", on))}
    cpu = {name: [lv["server_cpu_ms_per_request"] for lv in levels] for name, levels in (("off", off), ("on", on))}
    return {
        "compared": True,
        "concurrency": concurrency,
        "rounds": BATCHING_ROUNDS,
        "requests_per_s_off": rates["off"],
        "requests_per_s_on": rates["on"],
        "p50_ms_off": statistics.median(lv["p50_ms"] for lv in off),
        "p50_ms_on": statistics.median(lv["p50_ms"] for lv in on),
        "speedup": round(statistics.median(rates["on"]) / statistics.median(rates["off"]), 3),
        "server_cpu_ms_per_request_off": cpu["off"],
        "server_cpu_ms_per_request_on": cpu["on"],
        "server_cpu_ratio": cpu_ratio(cpu["off"], cpu["on"]),
        "mean_batch_size_on": [lv.get("server_mean_batch_size") for lv in on],
    }


def cpu_ratio(off: list, on: list) -> float | None:
    """How many times less server CPU a request costs batched (> 1: batching saves CPU), as a
    ratio of medians; None when a figure is missing or the batched median reads 0 ms (a round
    shorter than /proc's 10 ms tick)."""
    if None in off + on or statistics.median(on) <= 0:
        return None
    return round(statistics.median(off) / statistics.median(on), 3)


def measure_level(spec, signature: str, target: str, inputs: dict, runs: int, concurrency: int,
                  alongside=None, probe=None) -> dict:
    """``concurrency`` client threads, each sending ``runs`` requests after a warm-up.

    ``alongside`` (concurrency 1 only) is called and timed before each request;
    its p50 is returned as ``in_process_p50_ms``. ``probe`` (e.g. ``LocalServer.snapshot``)
    is called once every client has warmed up, before any measured request is sent,
    and again after the last reply: ``server_figures`` of the two are added.
    """
    if alongside is not None and concurrency != 1:
        raise ValueError("alongside calls are for concurrency 1")
    from genimg_export.runners import open_runner

    runners = [open_runner("grpc", target, spec, signature) for _ in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in runners]
    beside: list[float] = []
    errors: list[BaseException] = []
    snapshots: list[dict] = []
    # the barrier's action runs once all clients have warmed up and before any is released
    barrier = threading.Barrier(concurrency + 1, action=(lambda: snapshots.append(probe())) if probe else None)

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
    if probe is not None:
        snapshots.append(probe())
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
    if probe is not None:
        level.update(server_figures(*snapshots, len(flat)))
    return level


def server_figures(before: dict, after: dict, requests: int) -> dict:
    """The server's CPU ms per request between two ``LocalServer.snapshot``s, and, with
    batching on, the batches it ran and their mean size (rows per batch)."""
    figures = {"server_cpu_ms_per_request": None}
    if before["cpu_s"] is not None and after["cpu_s"] is not None:
        figures["server_cpu_ms_per_request"] = round((after["cpu_s"] - before["cpu_s"]) * 1e3 / requests, 4)
    if after["batches"] is not None:
        batches, rows = after["batches"] - before["batches"], after["rows"] - before["rows"]
        figures["server_batches"] = batches
        figures["server_mean_batch_size"] = round(rows / batches, 3) if batches else None
    return figures


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
        self.target: str | None = None

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
        self.target = f"127.0.0.1:{line.split()[1]}"
        return self.target

    def snapshot(self) -> dict:
        """The child's cumulative figures: ``cpu_s``, user+sys seconds of all its threads from
        ``/proc/<pid>/stat`` (None off Linux); from its own counters ``batches``, ``rows``,
        ``padding_rows`` (None when batching is off) and ``own_cpu_s``, its ``process_time``
        (the same quantity measured inside the child, finer than /proc's clock ticks)."""
        self.proc.stdin.write("counters\n")
        self.proc.stdin.flush()
        line = _read_line(self.proc.stdout, 30.0)
        if not line.startswith("counters "):
            raise GenimgError(f"the local server did not answer 'counters': {line.strip() or 'no output'}")
        return {**json.loads(line[len("counters "):]), "cpu_s": _proc_cpu_seconds(self.proc.pid)}

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


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` (all threads, exited ones included), or None without /proc."""
    try:
        return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def stat_cpu_seconds(stat: str) -> float:
    """utime + stime in seconds from the text of a /proc ``stat`` file (a process's or a thread's)."""
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _counters(server) -> dict:
    """What the child reports on a ``counters`` line."""
    batcher = server.manager.batcher
    counts = list(batcher.processed().values()) if batcher is not None else None
    totals = [sum(c[i] for c in counts) for i in range(3)] if counts is not None else [None] * 3
    return {"batches": totals[0], "rows": totals[1], "padding_rows": totals[2], "own_cpu_s": time.process_time()}


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
    for line in iter(sys.stdin.readline, ""):  # serve until the parent closes stdin
        if line.strip() == "counters":
            print(f"counters {json.dumps(_counters(server))}", flush=True)
    server.stop(grace=1.0)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
