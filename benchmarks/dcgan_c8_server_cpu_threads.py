"""Where the local server's CPU goes per request, by thread, unbatched vs batched (benchmarks/README.md,
"Server CPU per request").

Starts the bench's server child (genimg_export.bench.serving) once unbatched and once per
BatchingParameters file, with every Python thread's OS name set (so /proc/<pid>/task/*/stat
tells the gRPC workers, the batch threads and TF's pools apart), and runs the bench's 8-client
rounds against each in turn, ROUNDS times. Prints and writes JSON: per round and server, requests/s,
server CPU ms per request (the bench's figure), mean batch size, and CPU ms per request by thread
group. Unnamed threads ("python:<tid>") are TF's intra-op pool (created in C++).

    .venv/bin/python benchmarks/dcgan_c8_server_cpu_threads.py OUT RESULT.json [PARAMS.txt ...]

OUT is an export of dcgan (``genimg-export saved-model --model dcgan --out OUT``); with no PARAMS,
OUT/serving/batching_parameters.txt.
"""

from __future__ import annotations

import collections
import ctypes
import json
import statistics
import sys
import threading
from pathlib import Path

ROUNDS, RUNS, CONCURRENCY = 3, 150, 8


def _named_child() -> None:
    """The bench's server child, each Python thread named after itself (prctl PR_SET_NAME)."""
    libc, run = ctypes.CDLL(None), threading.Thread.run

    def named_run(self):
        libc.prctl(15, self.name[:15].encode(), 0, 0, 0)
        run(self)

    threading.Thread.run = named_run
    from genimg_export.bench.serving import _child

    _child(*sys.argv[2:4], int(sys.argv[4]), sys.argv[5])


def by_thread(pid: int) -> collections.Counter:
    """CPU seconds per thread group of ``pid`` (name without its number; unnamed ones by tid)."""
    from genimg_export.bench.serving import stat_cpu_seconds

    out = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")].rstrip("0123456789_-")
        out[f"python:{task.name}" if name == "python" else name] += stat_cpu_seconds(stat)
    return out


def main(out: Path, result: Path, params: list[Path]) -> None:
    from dcgan_c8_server_cpu_low_concurrency import dcgan_servers

    from genimg_export.bench.serving import measure_level

    spec, signature, inputs, servers = dcgan_servers(out, params or [out / "serving" / "batching_parameters.txt"])
    rows = []
    try:
        for server in servers.values():
            server.args[1:3] = [__file__, "--child"]
            server.start()
        for rnd in range(ROUNDS):
            for name, server in servers.items():
                rows.append({"round": rnd, "server": name, **_round(spec, signature, inputs, server, measure_level)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    medians = {name: statistics.median(r["server_cpu_ms_per_request"] for r in rows if r["server"] == name)
               for name in servers}
    summary = {name: {"median_server_cpu_ms_per_request": m, "ratio_to_unbatched": round(medians["unbatched"] / m, 3)}
               for name, m in medians.items()}
    print(json.dumps(summary, indent=1))
    result.write_text(json.dumps({"rounds": rows, "summary": summary}, indent=1) + "\n")


def _round(spec, signature, inputs, server, measure_level) -> dict:
    snaps = []

    def probe():
        snaps.append((server.snapshot(), by_thread(server.proc.pid)))
        return snaps[-1][0]

    level = measure_level(spec, signature, server.target, inputs, RUNS, CONCURRENCY, probe=probe)
    (_, before), (_, after) = snaps
    n = level["requests"]
    threads = {k: round((after[k] - before.get(k, 0)) * 1e3 / n, 3) for k in after if after[k] > before.get(k, 0)}
    return {"requests_per_s": level["requests_per_s"], "server_cpu_ms_per_request": level["server_cpu_ms_per_request"],
            "mean_batch_size": level.get("server_mean_batch_size"),
            "cpu_ms_per_request_by_thread": dict(sorted(threads.items(), key=lambda kv: -kv[1]))}


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        _named_child()
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
