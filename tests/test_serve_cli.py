"""genimg-export serve / predict / status / metadata, through the CLI.

predict/status/metadata run in-process (CliRunner) against a local server on
loopback; serve itself runs as a subprocess and is stopped with SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """tiny (image -> image) and dcgan (z -> image) exported by the real exporter."""
    from harness.tiny import tiny_spec

    from genimg_export.exporters import saved_model
    from genimg_export.zoo import registry

    out = tmp_path_factory.mktemp("serve-cli") / "out"
    spec, model = tiny_spec()
    saved_model.export(spec, model, out)
    dcgan = registry.get("dcgan")
    saved_model.export(dcgan, dcgan.build(), out)
    return out


@pytest.fixture(scope="module")
def server(export_dir):
    from genimg_serving.server import ModelServer

    with ModelServer.from_flags(model_config_file=export_dir / "serving" / "models.config",
                                grpc_port=0, rest_port=0, poll_seconds=0) as s:
        yield s


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def one_line_error(result, code, text):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert text in result.output
    assert result.output.strip().startswith("error:")


def test_status_and_metadata(cli, server):
    assert "tiny version 1: AVAILABLE" in ok(cli("status", "--target", server.target, "--model", "tiny"))
    out = ok(cli("metadata", "-t", f"http://127.0.0.1:{server.rest_port}", "-m", "dcgan"))
    assert "dcgan version 1" in out and "in  z: float32 [?x" in out and "out image: float32 [?x32x32x1]" in out


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_predict_image_in_image_out_equals_the_model(cli, server, export_dir, tmp_path, transport):
    import tensorflow as tf

    from genimg_edge.images import load_image, save_image, to_uint8

    source = tmp_path / "in.png"
    save_image(source, np.random.default_rng(0).uniform(-1, 1, (12, 10, 3)).astype(np.float32))
    target = server.target if transport == "grpc" else f"http://127.0.0.1:{server.rest_port}"
    out = ok(cli("predict", "-t", target, "-m", "tiny", "-i", source, "--output", tmp_path / "out.png"))
    assert "wrote" in out
    loaded = tf.saved_model.load(str(export_dir / "serving" / "tiny" / "1"))
    expected = loaded.signatures["serving_default"](x=tf.constant(load_image(source)[None]))["y"].numpy()[0]
    got = load_image(tmp_path / "out.png")
    assert got.shape == (12, 10, 3)
    assert np.abs(to_uint8(got).astype(int) - to_uint8(expected).astype(int)).max() <= 1


def test_predict_generator_draws_latents_from_the_seed(cli, server, tmp_path):
    from genimg_serving.client import Client

    ok(cli("predict", "-t", server.target, "-m", "dcgan", "--n", "4", "--seed", "3", "--output", tmp_path / "g.npy"))
    with Client(server.target) as client:
        expected = client.generate("dcgan", n=4, seed=3)
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), expected)
    ok(cli("predict", "-t", server.target, "-m", "dcgan", "--n", "4", "--output", tmp_path / "grid.png"))
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (70, 70)  # 2x2 tiles of 32 with 2px padding


def test_predict_npz_keeps_every_output(cli, server, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 3), np.float32))
    ok(cli("predict", "-t", server.target, "-m", "tiny", "-i", f"x={tmp_path / 'x.npy'}",
           "--output", tmp_path / "y.npz"))
    assert np.load(tmp_path / "y.npz")["y"].shape == (2, 8, 8, 3)


def test_predict_errors_are_one_line(cli, server, tmp_path):
    png = tmp_path / "in.png"
    from genimg_edge.images import save_image

    save_image(png, np.zeros((4, 4, 3), np.float32))
    t = server.target
    one_line_error(cli("predict", "-t", t, "-m", "nope", "-i", png, "--output", tmp_path / "o.png"), 2,
                   "Servable not found for request: Latest(nope)")
    one_line_error(cli("predict", "-t", t, "-m", "tiny", "--output", tmp_path / "o.png"), 2,
                   "takes an image (x): pass --input IMAGE")
    one_line_error(cli("predict", "-t", t, "-m", "tiny", "-i", tmp_path / "missing.png",
                       "--output", tmp_path / "o.png"),
                   2, "no such input file")
    one_line_error(cli("predict", "-t", t, "-m", "tiny", "-i", png, "--output", tmp_path / "o.gif"), 2,
                   "use an image name (.png, .jpg) or an array name")
    one_line_error(cli("predict", "-t", t, "-m", "dcgan", "-i", png, "--output", tmp_path / "o.png"), 2,
                   "not an image: pass a .npy file")
    one_line_error(cli("predict", "-t", t, "-m", "tiny", "-i", png, "--output", tmp_path / "o.png",
                       "--version", "9"), 2,
                   "Specific(tiny, 9)")
    one_line_error(cli("status", "-t", "127.0.0.1:1", "-m", "tiny", "--timeout", "2"), 2, "no answer from 127.0.0.1:1")


def test_serve_refuses_bad_flags_in_one_line(cli, tmp_path):
    one_line_error(cli("serve"), 2, "give either --model-config-file")
    one_line_error(cli("serve", "--model-name", "m"), 2, "--model-name and --model-base-path go together")
    one_line_error(cli("serve", "--model-name", "m", "--model-base-path", tmp_path / "nowhere"), 2,
                   "could not find base path")
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { name: 'x' }")
    one_line_error(cli("serve", "--model-config-file", bad), 2, "is not a ModelServerConfig")
    one_line_error(cli("serve", "--model-config-file", tmp_path / "none.config"), 2, "cannot read model config file")
    one_line_error(cli("serve", "--model-name", "m", "--model-base-path", tmp_path, "--tls-cert", bad), 2,
                   "TLS needs both a certificate and a key")
    one_line_error(cli("serve", "--model-name", "m", "--model-base-path", tmp_path, "--batching-parameters-file", bad),
                   2, "is not TF Serving's BatchingParameters")
    one_line_error(cli("serve", "--model-name", "m", "--model-base-path", tmp_path, "--batching-parameters-file",
                       tmp_path / "none.txt"), 2, "cannot read batching parameters")


@pytest.mark.slow  # a fresh process imports TensorFlow: 20-40 s on a busy machine
def test_serve_command_serves_until_sigterm(export_dir):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genimg_export", "serve", "--model-config-file",
         str(export_dir / "serving" / "models.config"), "--port", "0", "--rest-port", "0",
         "--batching-parameters-file", str(export_dir / "serving" / "batching_parameters.txt")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        port = None
        deadline = time.monotonic() + 240
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            found = re.search(r"on gRPC 127\.0\.0\.1:(\d+)", line)
            port = found and int(found.group(1))
        assert port, "serve did not announce its port"
        from genimg_serving.client import Client

        with Client(f"127.0.0.1:{port}") as client:
            assert {s.state for s in client.status("tiny")} == {"AVAILABLE"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        rest = proc.stderr.read()
        assert "stopped" in rest and "batching: max_batch_size 8" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
