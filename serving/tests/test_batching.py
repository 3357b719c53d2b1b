"""Server-side batching: TF Serving's --enable_batching semantics in the local server."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from harness.serving import start_server

from genimg_serving.client import Client
from genimg_serving.configs import ConfigError, single_model
from genimg_serving.errors import InvalidArgumentError, ServingError, UnavailableError
from genimg_serving.server import BatchingOptions, read_batching_parameters
from genimg_serving.server.batching import Batcher


def test_concurrent_requests_share_batches_and_each_gets_its_own_rows(affine_base):
    options = BatchingOptions(max_batch_size=8, batch_timeout_micros=20_000, num_batch_threads=1)
    server = start_server(single_model("affine", affine_base), batching=options)
    inputs = [np.full((1 + i % 2, 4, 4, 3), float(i), np.float32) for i in range(8)]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(inputs))

    def call(i):
        with Client(server.target) as client:
            client.signature("affine")
            barrier.wait()
            results[i] = client.predict("affine", {"x": inputs[i]})["y"]

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        metrics = server.metrics.prometheus_text()
    finally:
        server.stop()
    for i, x in enumerate(inputs):  # a mix-up of rows between requests would show here
        np.testing.assert_array_equal(results[i], 2 * x + 1)
    batches, rows, padding = server.manager.batcher.processed()["affine"]
    assert rows == sum(len(x) for x in inputs) and padding == 0
    assert batches < len(inputs), f"no request shared a batch: {batches} batches for {len(inputs)} requests"
    assert f':genimg_serving:batching:rows{{model_name="affine"}} {rows}' in metrics


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_request_larger_than_max_batch_size_is_tf_servings_invalid_argument(affine_base, transport):
    server = start_server(single_model("affine", affine_base), batching=BatchingOptions(max_batch_size=2))
    try:
        with Client(server.target if transport == "grpc" else server.rest_url) as client:
            with pytest.raises(InvalidArgumentError, match="Task size 3 is larger than maximum batch size 2"):
                client.predict("affine", {"x": np.zeros((3, 2, 2, 3), np.float32)})
            y = client.predict("affine", {"x": np.ones((2, 2, 2, 3), np.float32)})["y"]
    finally:
        server.stop()
    np.testing.assert_array_equal(y, 3.0)  # the server still serves


def test_lone_request_runs_after_the_timeout():
    batcher = Batcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=1000, num_batch_threads=1))
    batcher.start()
    try:
        out = batcher.run("k", {"x": np.arange(3.0)[:, None]}, lambda inputs: {"y": inputs["x"] * 10})
    finally:
        batcher.stop()
    np.testing.assert_array_equal(out["y"], [[0.0], [10.0], [20.0]])


def test_padding_to_allowed_batch_sizes_is_dropped_from_the_outputs():
    seen = []
    batcher = Batcher(BatchingOptions(max_batch_size=8, allowed_batch_sizes=(4, 8), num_batch_threads=1))
    batcher.start()

    def run(inputs):
        seen.append(inputs["x"].copy())
        return {"y": inputs["x"] + 1}

    try:
        out = batcher.run("k", {"x": np.array([[5.0], [6.0], [7.0]])}, run, model="m")
    finally:
        batcher.stop()
    np.testing.assert_array_equal(seen[0], [[5.0], [6.0], [7.0], [5.0]])  # padded with the first row
    np.testing.assert_array_equal(out["y"], [[6.0], [7.0], [8.0]])
    assert batcher.processed() == {"m": (1, 3, 1)}  # one batch, three rows, one padding row


def test_full_queue_is_unavailable_and_a_failed_batch_fails_only_its_requests():
    release = threading.Event()
    batcher = Batcher(BatchingOptions(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1))
    batcher.start()

    def slow(inputs):
        release.wait(10)
        return {"y": inputs["x"]}

    def broken(inputs):
        raise InvalidArgumentError("bad values")

    x = {"x": np.zeros((1, 1))}
    first = threading.Thread(target=batcher.run, args=("k", x, slow))
    first.start()
    while batcher._open or batcher._full:  # until the batch thread holds the first batch
        threading.Event().wait(0.01)
    second = threading.Thread(target=batcher.run, args=("k", x, slow))
    second.start()
    while not batcher._full:
        threading.Event().wait(0.01)
    try:
        with pytest.raises(UnavailableError,
                           match="The batch scheduling queue to which this task was submitted is full"):
            batcher.run("k", x, slow)
    finally:
        release.set()
        first.join(10)
        second.join(10)
    with pytest.raises(InvalidArgumentError, match="bad values"):
        batcher.run("other", x, broken)
    assert batcher.run("k", x, slow)["y"].shape == (1, 1)
    batcher.stop()


def test_requests_of_different_shapes_run_in_different_batches():
    shapes = []
    batcher = Batcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=1))
    batcher.start()

    def run(inputs):
        shapes.append(inputs["x"].shape)
        return {"y": inputs["x"]}

    calls = [threading.Thread(target=batcher.run, args=("k", {"x": np.zeros((1, n))}, run)) for n in (2, 3, 2, 3)]
    for t in calls:
        t.start()
    for t in calls:
        t.join(10)
    batcher.stop()
    assert sorted(shapes) == [(2, 2), (2, 3)]


def test_stopped_batcher_refuses_instead_of_hanging():
    batcher = Batcher(BatchingOptions(num_batch_threads=1))
    with pytest.raises(UnavailableError, match="batching is stopped"):
        batcher.run("k", {"x": np.zeros((1, 1))}, lambda inputs: inputs)


def test_exported_batching_parameters_are_read(tmp_path):
    path = tmp_path / "batching_parameters.txt"
    path.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\n"
                    "num_batch_threads { value: 2 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n")
    options = read_batching_parameters(path)
    assert options == BatchingOptions(max_batch_size=8, batch_timeout_micros=1000, num_batch_threads=2,
                                      max_enqueued_batches=10, allowed_batch_sizes=(4, 8))


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 0 }", "max_batch_size must be at least 1"),
    ("max_batch_size { value: 8 }\nallowed_batch_sizes: 4", "must increase and end at max_batch_size"),
    ("max_batch: 8", "is not TF Serving's BatchingParameters"),
    ("pad_variable_length_inputs: true", "pad_variable_length_inputs is not supported"),
])
def test_bad_batching_parameters_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "batching_parameters.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_batching_parameters(path)


def test_unbatchable_inputs_run_on_their_own():
    batcher = Batcher(BatchingOptions(num_batch_threads=1))  # not started: would refuse a batched call
    out = batcher.run("k", {"x": np.float32(2.0)}, lambda inputs: {"y": inputs["x"] * 2})
    assert out["y"] == 4.0


def test_grpc_status_of_a_batched_error_is_kept(twin_testdata):
    # Shapes are not checked before the run (as in TF Serving), so the error comes from
    # the batched run itself: ParseExample refuses a [1, 1] batch of serialized Examples.
    base = twin_testdata / "saved_model_half_plus_two_cpu"
    server = start_server(single_model("m", base), batching=BatchingOptions(max_batch_size=4))
    try:
        with Client(server.target) as client, pytest.raises(ServingError) as err:
            client.predict("m", {"inputs": np.array([[b"x"]], object)}, signature="classify_x_to_y")
    finally:
        server.stop()
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "got shape: [1,1]" in err.value.message


def test_request_that_does_not_fit_the_open_batch_starts_the_next_one():
    batcher = Batcher(BatchingOptions(max_batch_size=3, batch_timeout_micros=50_000, num_batch_threads=2))
    batcher.start()
    results = {}

    def call(i):
        results[i] = batcher.run("k", {"x": np.full((2, 1), float(i))}, lambda inputs: {"y": inputs["x"] * 2}, "m")

    calls = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    try:
        for t in calls:
            t.start()
        for t in calls:
            t.join(10)
    finally:
        batcher.stop()
    assert {i: r["y"].ravel().tolist() for i, r in results.items()} == {0: [0.0, 0.0], 1: [2.0, 2.0]}
    assert batcher.processed() == {"m": (2, 4, 0)}  # 2 + 2 rows > 3: two batches
