"""The grpc and rest rows: the srgan export served by the local TF-Serving-compatible
server, checked by ``genimg-export parity --backends grpc,rest``."""

from __future__ import annotations

import json

import pytest
from harness.zoo_exports import exported


@pytest.fixture(scope="module")
def server():
    from genimg_serving.configs import single_model
    from genimg_serving.server import ModelServer

    ex = exported("srgan")
    s = ModelServer(single_model("srgan", ex.out / "serving" / "srgan"), grpc_port=0, rest_port=0,
                    poll_seconds=0).start()
    yield ex, s
    s.stop(grace=0)


def test_grpc_and_rest_rows_pass(server, cli, tmp_path):
    ex, s = server
    result = cli("parity", "--model", "srgan", "--weights", ex.weights, "--backends", "grpc,rest",
                 "--grpc-target", s.target, "--rest-target", s.rest_url, "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [(r["backend"], r["variant"]) for r in rows] == [("grpc", "fp32"), ("rest", "fp32")]
    assert all(r["passed"] and r["max_abs"] <= 1e-4 for r in rows)


def test_unreachable_server_fails_the_row_and_names_it(cli):
    ex = exported("srgan")
    result = cli("parity", "--model", "srgan", "--weights", ex.weights, "--backends", "grpc",
                 "--grpc-target", "127.0.0.1:1")
    assert result.exit_code == 1, result.output
    assert "grpc/fp32 (hr)" in result.output and "127.0.0.1:1" in result.output
