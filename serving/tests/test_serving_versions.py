"""Versions on disk: policies, polling, hot swap under load, labels, broken versions, warmup."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from harness.serving import start_server, write_affine

from genimg_serving.client import Client
from genimg_serving.configs import ModelConfig, read_model_config, single_model
from genimg_serving.errors import NotFoundError
from genimg_serving.server.manager import ModelManager, aspired, list_versions

X = np.ones((1, 4, 4, 3), np.float32)


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("config, expected", [
    (ModelConfig("m", Path(".")), [5]),
    (ModelConfig("m", Path("."), num_versions=2), [3, 5]),
    (ModelConfig("m", Path("."), policy="all"), [1, 3, 5]),
    (ModelConfig("m", Path("."), policy="specific", versions=(1, 4)), [1]),
])
def test_version_policies(config, expected):
    on_disk = {1: Path("1"), 3: Path("3"), 5: Path("5")}
    assert sorted(aspired(config, on_disk)) == expected


def test_only_numeric_folders_with_a_saved_model_are_versions(tmp_path):
    for name in ("7", "0012", "tmp-3", ".8", "9"):
        (tmp_path / name).mkdir()
    for name in ("7", "0012", "tmp-3", ".8"):
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / "10").write_text("a file, not a folder")
    assert sorted(list_versions(tmp_path)) == [7, 12]  # 9 has no saved_model.pb yet


def test_new_version_while_clients_loop_zero_failures_and_responses_switch(tmp_path):
    write_affine(tmp_path / "1", 1.0, 0.0)  # y = x
    server = start_server(single_model("m", tmp_path), poll_seconds=0.2, rest_port=None)
    seen, failures, stop = [], [], threading.Event()

    def loop():
        with Client(server.target, timeout=30) as client:
            for _ in range(5000):  # bounded
                if stop.is_set():
                    return
                try:
                    out, version = client.predict_versioned("m", {"x": X})
                    seen.append((version, float(out["y"].mean())))
                except Exception as e:  # any failure is a test failure
                    failures.append(repr(e))
                time.sleep(0.005)  # leave the loader some CPU on a small machine

    threads = [threading.Thread(target=loop) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(seen) >= 20, what="first responses")
        write_affine(tmp_path / "2", 1.0, 1.0)  # y = x + 1, renamed into place
        wait_for(lambda: any(v == 2 for v, _ in seen), what="version 2 to answer")
        count = len(seen)
        wait_for(lambda: len(seen) >= count + 20, what="responses after the swap")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        server.stop()
    assert failures == []
    assert {(v, y) for v, y in seen} == {(1, 1.0), (2, 2.0)}
    last_one = max(i for i, (v, _) in enumerate(seen) if v == 1)
    first_two = min(i for i, (v, _) in enumerate(seen) if v == 2)
    assert last_one < first_two + 4  # two threads: at most a few overlap at the switch
    states = {v: s.state for v, s in server.manager.states("m").items()}
    assert states == {1: "END", 2: "AVAILABLE"}


def test_in_flight_servable_keeps_working_after_unload(tmp_path):
    write_affine(tmp_path / "1", 3.0, 0.0)
    manager = ModelManager(single_model("m", tmp_path), warmup=False)
    manager.poll()
    old = manager.resolve("m")  # what a request in flight holds
    write_affine(tmp_path / "2", 5.0, 0.0)
    manager.poll()
    assert manager.resolve("m").version == 2
    np.testing.assert_array_equal(old.run("serving_default", {"x": X})["y"], 3 * X)
    with pytest.raises(NotFoundError, match=r"Specific\(m, 1\)"):
        manager.resolve("m", version=1)


def test_broken_or_unfinished_version_keeps_the_old_one_serving(tmp_path):
    write_affine(tmp_path / "1", 2.0, 0.0)
    manager = ModelManager(single_model("m", tmp_path), warmup=False)
    manager.poll()
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"not a protobuf \xff\xff")
    (tmp_path / "3" / "variables").mkdir(parents=True)  # still being copied: no saved_model.pb
    manager.poll()
    assert manager.resolve("m").version == 1
    state = manager.states("m")[2]
    assert state.state == "END" and state.error_code != 0 and "saved_model.pb" in state.error_message
    assert 3 not in manager.states("m")


def test_labels_and_models_follow_models_config_edits(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    write_affine(base / "1", 1.0, 0.0)
    write_affine(base / "2", 1.0, 1.0)
    config = tmp_path / "models.config"

    def write_config(label_version, model="m"):
        tmp = tmp_path / "models.config.tmp"
        tmp.write_text(f'model_config_list {{ config {{ name: "{model}" base_path: "m"'
                       f' model_version_policy {{ all {{}} }}'
                       f' version_labels {{ key: "stable" value: {label_version} }} }} }}')
        tmp.replace(config)

    write_config(1)
    server = start_server(read_model_config(config), config_file=config, poll_seconds=0.2,
                          rest_port=None)
    try:
        with Client(server.target) as client:
            assert client.predict_versioned("m", {"x": X}, label="stable")[1] == 1
            time.sleep(0.05)  # a distinct mtime
            write_config(2)
            wait_for(lambda: client.predict_versioned("m", {"x": X}, label="stable")[1] == 2,
                     what="label stable to move to 2")
            write_config(1, model="renamed")
            wait_for(lambda: "renamed" in server.manager.served(), what="config reload")
            with pytest.raises(NotFoundError, match=r"Latest\(m\)"):
                client.predict("m", {"x": X})
    finally:
        server.stop()


def test_warmup_requests_are_replayed_and_a_bad_one_fails_the_load(tmp_path):
    import tensorflow as tf

    from genimg_serving.protos import prediction_log_pb2
    from genimg_serving.tensors import to_tensor_proto

    def write_warmup(version: Path, alias: str):
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.model_spec.name = "m"
        log.predict_log.request.inputs[alias].CopyFrom(to_tensor_proto(X))
        (version / "assets.extra").mkdir()
        with tf.io.TFRecordWriter(str(version / "assets.extra" / "tf_serving_warmup_requests")) as w:
            w.write(log.SerializeToString())

    good = write_affine(tmp_path / "1", 1.0, 0.0)
    write_warmup(good, "x")
    manager = ModelManager(single_model("m", tmp_path))
    manager.poll()
    assert manager.states("m")[1].state == "AVAILABLE"
    bad = tmp_path / ".build-2"
    write_affine(bad, 1.0, 0.0)
    write_warmup(bad, "wrong_name")
    bad.rename(tmp_path / "2")
    manager.poll()
    assert manager.resolve("m").version == 1
    assert "warmup" in manager.states("m")[2].error_message
    assert "input tensor alias not found" in manager.states("m")[2].error_message


def test_reload_config_rpc_replaces_the_served_models(tmp_path):
    """ModelService.HandleReloadConfigRequest: the new config is served, the old model goes."""
    import grpc
    from google.protobuf import text_format

    from genimg_serving.protos import model_management_pb2, model_service_pb2_grpc

    write_affine(tmp_path / "1", 1.0, 0.0)
    server = start_server(single_model("old", tmp_path), rest_port=None)
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(f'model_config_list {{ config {{ name: "new" base_path: "{tmp_path}"'
                      ' version_labels { key: "stable" value: 1 } } }', request.config)
    try:
        with grpc.insecure_channel(server.target) as channel:
            model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=60)
        with Client(server.target) as client:
            assert client.predict_versioned("new", {"x": X}, label="stable")[1] == 1
            with pytest.raises(NotFoundError):
                client.predict("old", {"x": X})
    finally:
        server.stop()
