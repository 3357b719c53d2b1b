"""Client behaviour against the local server: retries, deadlines, limits, TLS, tokens, helpers."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
from harness.serving import free_ports, start_server

from genimg_serving.client import Client
from genimg_serving.configs import single_model
from genimg_serving.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)


@pytest.fixture(scope="module")
def affine_server(affine_base):
    server = start_server(single_model("affine", affine_base))
    yield server
    server.stop()


def test_large_image_round_trips_over_grpc(affine_server):
    """A 1024x1024x3 float output is 12.6 MB, three times grpc's default 4 MiB limit."""
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1024, 1024, 3)).astype(np.float32)
    with Client(affine_server.target, timeout=120) as client:
        y = client.predict("affine", {"x": x})["y"]
    np.testing.assert_array_equal(y, x * 2 + 1)


def test_default_grpc_limits_would_refuse_it(affine_server):
    """The check above means something: a client with grpc's 4 MiB default fails."""
    x = np.zeros((1, 1024, 1024, 3), np.float32)
    with Client(affine_server.target, max_message_bytes=4 * 1024 * 1024) as client:
        with pytest.raises(Exception, match="RESOURCE_EXHAUSTED|larger than max"):
            client.predict("affine", {"x": x})


def test_unavailable_is_retried_until_the_server_comes_up(affine_base):
    port = free_ports()[0]
    result, errors = {}, []

    def call():
        try:
            with Client(f"127.0.0.1:{port}", timeout=120, retries=1000, backoff=0.05,
                        max_backoff=0.3) as client:
                result["y"] = client.predict("affine", {"x": np.zeros((1, 2, 2, 3), np.float32)})["y"]
        except Exception as e:
            errors.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1.0)  # the client is retrying against a closed port
    server = start_server(single_model("affine", affine_base), grpc_port=port, rest_port=None)
    try:
        caller.join(timeout=120)
    finally:
        server.stop()
    assert errors == [] and np.all(result["y"] == 1.0)


def test_unavailable_gives_up_after_the_retries():
    started = time.monotonic()
    with Client(f"127.0.0.1:{free_ports()[0]}", retries=2, backoff=0.01, timeout=30) as client:
        with pytest.raises(UnavailableError):
            client.status("affine")
    assert time.monotonic() - started < 20


def test_other_errors_are_not_retried(affine_server):
    before = affine_server.metrics.prometheus_text()
    with Client(affine_server.target, retries=5) as client:
        with pytest.raises(NotFoundError, match=r"Latest\(nope\)"):
            client.metadata("nope")
    labels = {"model_name": "nope", "api": "GetModelMetadata", "status": "NOT_FOUND"}
    assert _sample(before, ":tensorflow:serving:request_count", labels) is None
    assert _sample(affine_server.metrics.prometheus_text(), ":tensorflow:serving:request_count", labels) == 1


def _sample(text: str, name: str, labels: dict):
    """A sample's value from a Prometheus page, read by prometheus_client's parser
    (label order and "1" vs "1.0" are the writer's choice, not part of the format)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_deadline_exceeded_keeps_its_own_error(affine_server):
    x = np.zeros((4, 512, 512, 3), np.float32)
    with Client(affine_server.target) as client:
        client.signature("affine")  # metadata cached; the deadline applies to the predict
        with pytest.raises(DeadlineExceededError):
            client.predict("affine", {"x": x}, timeout=0.001)


def test_rest_transport_has_the_same_interface(affine_server):
    x = np.random.default_rng(1).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    with Client(affine_server.rest_url) as client:
        np.testing.assert_array_equal(client.predict("affine", {"x": x})["y"], 2 * x + 1)
        assert client.metadata("affine").signature().outputs["y"].shape == (None, None, None, 3)
        assert client.status("affine")[0].state == "AVAILABLE"
        assert client.wait_until_available("affine", timeout=10)[0].version == 1
        with pytest.raises(NotFoundError):
            client.predict("affine", {"x": x}, version=42)


def test_inputs_are_cast_to_the_signature_dtype(affine_server):
    with Client(affine_server.target) as client:
        y = client.predict("affine", {"x": np.zeros((1, 2, 2, 3), np.float64)})["y"]
        assert y.dtype == np.float32
        with pytest.raises(InvalidArgumentError, match="Both model version"):
            client.predict("affine", {"x": y}, version=1, label="stable")


def test_upscale_helper_reads_names_from_metadata(affine_server):
    image = np.random.default_rng(2).uniform(-1, 1, (6, 5, 3)).astype(np.float32)
    with Client(affine_server.target) as client:
        out = client.upscale("affine", image)
        assert out.shape == (6, 5, 3)
        np.testing.assert_array_equal(out, 2 * image + 1)
        with pytest.raises(InvalidArgumentError, match="not a latent vector"):
            client.generate("affine")


def test_bounded_in_flight_answers_resource_exhausted(affine_base):
    """max_in_flight=1: simultaneous large requests beyond the one slot are refused at once."""
    server = start_server(single_model("affine", affine_base), max_in_flight=1)
    x = np.zeros((2, 512, 512, 3), np.float32)
    outcomes, barrier = [], threading.Barrier(6, timeout=60)
    client = Client(server.target, retries=0, timeout=120)  # one channel, shared by the threads
    client.signature("affine")  # metadata fetched once, before the burst

    def call():
        barrier.wait()
        try:
            client.predict("affine", {"x": x})
            outcomes.append("ok")
        except ResourceExhaustedError:
            outcomes.append("refused")

    try:
        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        slot = server._rest.slots
        assert slot.acquire(blocking=False)  # hold the REST slot: the next call is refused
        try:
            with Client(server.rest_url, retries=0) as client:
                with pytest.raises(ResourceExhaustedError, match="too many requests in flight"):
                    client.status("affine")
        finally:
            slot.release()
    finally:
        client.close()
        server.stop()
    assert "ok" in outcomes and "refused" in outcomes, outcomes


def test_bearer_token_is_required_on_both_ports(affine_base):
    server = start_server(single_model("affine", affine_base), auth_token="s3cret")
    try:
        for target in (server.target, server.rest_url):
            for token in (None, "wrong"):
                with Client(target, auth_token=token) as client:
                    with pytest.raises(UnauthenticatedError, match="bearer token"):
                        client.status("affine")
            with Client(target, auth_token="s3cret") as client:
                assert client.status("affine")[0].state == "AVAILABLE"
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls_on_both_ports(affine_base, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    server = start_server(single_model("affine", affine_base), tls_cert=cert, tls_key=key)
    roots = cert.read_bytes()
    try:
        with Client(server.target, tls=True, root_certificates=roots) as client:
            assert client.status("affine")[0].state == "AVAILABLE"
        assert server.rest_url.startswith("https://")
        with Client(server.rest_url, root_certificates=roots) as client:
            assert client.status("affine")[0].state == "AVAILABLE"
        with Client(server.target, retries=0, timeout=5) as plaintext:
            with pytest.raises(UnavailableError):
                plaintext.status("affine")
    finally:
        server.stop()


def test_server_binds_loopback_and_refuses_a_busy_port(affine_server, affine_base):
    assert affine_server.host == "127.0.0.1"
    with pytest.raises(OSError, match="cannot listen"):
        start_server(single_model("affine", affine_base), grpc_port=affine_server.grpc_port)


def test_generate_helper_on_a_conditional_generator(tmp_path):
    """z (N, 4) float32 and label (N,) int32 in, image out: names come from metadata."""
    import tensorflow as tf

    class Cond(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="z"),
                                      tf.TensorSpec([None], tf.int32, name="label")])
        def serve(self, z, label):
            value = tf.reduce_sum(z, axis=1) + tf.cast(label, tf.float32)
            return {"image": tf.tile(tf.reshape(value, [-1, 1, 1, 1]), [1, 2, 2, 1])}

    module = Cond()
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    server = start_server(single_model("cgan", tmp_path))
    try:
        with Client(server.target) as client:
            z = np.ones((3, 4), np.float32)
            images = client.generate("cgan", z, class_id=[0, 1, 2])
            assert images.shape == (3, 2, 2, 1)
            np.testing.assert_array_equal(images[:, 0, 0, 0], [4, 5, 6])
            assert client.generate("cgan", n=2, seed=7, class_id=3).shape == (2, 2, 2, 1)
            with pytest.raises(InvalidArgumentError, match="conditional: pass class_id="):
                client.generate("cgan", n=1)
            with pytest.warns(DeprecationWarning, match="pass class_id="):  # the old keyword still works
                np.testing.assert_array_equal(client.generate("cgan", z, label=[0, 1, 2]), images)
            with pytest.raises(InvalidArgumentError, match="class_id= only"):
                client.generate("cgan", z, class_id=1, label=1)
    finally:
        server.stop()


def test_retry_schedule_respects_the_attempt_budget():
    client = Client("127.0.0.1:1", retries=3, backoff=0.001)
    calls = []

    def always_unavailable(remaining):
        calls.append(remaining)
        raise UnavailableError("down")

    with pytest.raises(UnavailableError):
        client._call(always_unavailable, timeout=10)
    assert len(calls) == 4  # the first try and three retries
    client.close()


def test_message_size_cap_on_both_ports(affine_base):
    import http.client

    server = start_server(single_model("affine", affine_base), max_message_bytes=64 * 1024)
    x = np.zeros((1, 128, 128, 3), np.float32)  # 196 KB
    try:
        with Client(server.target, retries=0) as client:
            with pytest.raises(ResourceExhaustedError):
                client.predict("affine", {"x": x})
            small = client.predict("affine", {"x": x[:, :8, :8]})["y"]
            assert small.shape == (1, 8, 8, 3)
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        conn.request("POST", "/v1/models/affine:predict", body=b"{" + b" " * 100_000 + b"}")
        response = conn.getresponse()
        assert response.status == 413 and b"exceeds the limit of 65536 bytes" in response.read()
        conn.close()
    finally:
        server.stop()


def test_prometheus_metrics_on_the_rest_port(affine_server):
    import urllib.request

    with Client(affine_server.target) as client:
        client.predict("affine", {"x": np.zeros((1, 2, 2, 3), np.float32)})
    with urllib.request.urlopen(f"{affine_server.rest_url}/monitoring/prometheus/metrics", timeout=30) as r:
        text = r.read().decode()
    assert _sample(text, ":tensorflow:serving:request_count",
                   {"model_name": "affine", "api": "Predict", "status": "OK"}) >= 1
    assert _sample(text, ":tensorflow:serving:request_latency_count", {"model_name": "affine", "API": "Predict"}) >= 1


def test_pixel_cap_on_both_ports(affine_base):
    """A batch over --max-pixels is refused before it runs; the server keeps serving."""
    import http.client
    import json

    server = start_server(single_model("affine", affine_base), max_pixels=32 * 32)
    too_many = np.zeros((2, 32, 24, 3), np.float32)  # 1536 pixels
    try:
        with Client(server.target, retries=0) as client:
            with pytest.raises(ResourceExhaustedError, match=r"1536 pixels .*at most 1024"):
                client.predict("affine", {"x": too_many})
            assert client.predict("affine", {"x": too_many[:1]})["y"].shape == (1, 32, 24, 3)
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        conn.request("POST", "/v1/models/affine:predict", body=json.dumps({"inputs": {"x": too_many.tolist()}}))
        response = conn.getresponse()
        assert response.status == 429 and b"at most 1024" in response.read()
        conn.close()
    finally:
        server.stop()
