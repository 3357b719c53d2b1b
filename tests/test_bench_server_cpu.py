"""bench's server CPU per request: the local server child's own CPU over exactly the measured requests.

Real servers (the tiny two-conv model, unbatched and with the export's
batching_parameters.txt) in child processes, real gRPC clients. Nothing is
timed: the /proc figure is checked against the child's own ``process_time``
over the same window, and the batch counters against the requests sent.
"""

from __future__ import annotations

import statistics
import time

import pytest

from genimg_export.bench.serving import LocalServer, compare_batching, cpu_ratio, measure_level
from genimg_serving.configs import BATCHING_FILE

SIG = "serving_default"
TICK_S = 0.01  # /proc/<pid>/stat counts in clock ticks (100 Hz)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(spec, inputs, unbatched server, batched server) of the tiny model, both started."""
    from harness.tiny import sample_inputs, tiny_spec

    from genimg_export.exporters import run_all

    spec, model = tiny_spec()
    out = tmp_path_factory.mktemp("server_cpu") / "out"
    outcomes = run_all(spec, model, out, pairs=[("saved_model", "fp32")])
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    base = out / "serving" / spec.name
    # 96x96: the server's convolutions cost several times the client's work per request,
    # so the client process's CPU could not pass for the server's below
    inputs = sample_inputs(1, 0, SIG, (16, 16))
    parameters = out / "serving" / BATCHING_FILE
    servers = [LocalServer(base, spec.name, 1), LocalServer(base, spec.name, 1, batching=parameters)]
    try:
        for s in servers:
            s.start()
        yield spec, inputs, *servers
    finally:
        for s in servers:
            s.stop()


def _recording(server, into: list):
    """``server.snapshot``, also noting this process's own CPU time at each call."""
    def probe():
        into.append({**server.snapshot(), "client_cpu_s": time.process_time()})
        return into[-1]
    return probe


@pytest.mark.parametrize("which", ["unbatched", "batched"])
def test_server_cpu_is_the_childs_own_cpu_per_measured_request(served, which):
    spec, inputs, plain, batched = served
    server = plain if which == "unbatched" else batched
    snaps: list[dict] = []
    level = measure_level(spec, SIG, server.target, inputs, 80, 4, probe=_recording(server, snaps))
    before, after = snaps
    requests = level["requests"]
    assert requests == 320 and level["server_cpu_ms_per_request"] > 0
    total_s = level["server_cpu_ms_per_request"] * requests / 1e3
    own_s = after["own_cpu_s"] - before["own_cpu_s"]  # measured inside the child, nanosecond clock
    assert own_s > 20 * TICK_S, own_s  # enough work that the tick rounding below is small
    tolerance = 2 * TICK_S + 0.05 * own_s
    assert total_s == pytest.approx(own_s, abs=tolerance), (total_s, own_s)
    # the check can fail: this (client) process's CPU over the same window is far from it
    client_s = after["client_cpu_s"] - before["client_cpu_s"]
    assert abs(client_s - own_s) > tolerance, (client_s, own_s)
    if which == "unbatched":
        assert after["batches"] is None and "server_mean_batch_size" not in level
    else:  # every measured request, and nothing else, went through the batcher: one row each
        assert after["rows"] - before["rows"] == requests
        assert after["padding_rows"] == before["padding_rows"]  # no allowed_batch_sizes in the export's file
        batches = level["server_batches"]
        assert requests / 8 <= batches <= requests  # max_batch_size 8
        assert level["server_mean_batch_size"] == pytest.approx(requests / batches, abs=1e-3)


def test_compare_batching_reports_both_servers_cpu_and_their_ratio(served):
    spec, inputs, plain, batched = served
    result = compare_batching(spec, SIG, (plain, batched), inputs, 20, 4)
    off, on = result["server_cpu_ms_per_request_off"], result["server_cpu_ms_per_request_on"]
    assert len(off) == len(on) == len(result["mean_batch_size_on"]) == result["rounds"]
    assert all(v > 0 for v in off + on)
    assert result["server_cpu_ratio"] == pytest.approx(statistics.median(off) / statistics.median(on), abs=1e-3)
    assert all(1 <= size <= 8 for size in result["mean_batch_size_on"])


def test_no_ratio_from_rounds_too_short_for_procs_ticks():
    assert cpu_ratio([2.0, 3.0, 4.0], [1.0, 2.0, 2.0]) == 1.5
    assert cpu_ratio([0.0, 2.0, 0.0], [0.0, 0.0, 1.0]) is None  # was a ZeroDivisionError
    assert cpu_ratio([1.0, None, 1.0], [1.0, 1.0, 1.0]) is None
