"""A user's own model (built here, saved as .keras) through export and ``genimg-export parity``."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def user_export(tmp_path_factory):
    from harness.tiny import build

    from genimg_export.exporters import run_all
    from genimg_export.zoo import user

    root = tmp_path_factory.mktemp("user")
    path = root / "my_filter.keras"
    build().save(path)
    spec = user.spec_from_path(path)
    pairs = [("saved_model", "fp32"), ("tflite", "fp32"), ("onnx", "fp32")]
    outcomes = run_all(spec, spec.extra["model"], root / "out", pairs=pairs)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return path, root / "out"


def test_user_model_parity_passes_on_random_inputs(user_export, cli, tmp_path):
    path, out = user_export
    result = cli("parity", "--model", path, "--out", out, "--input-range", "-0.5,0.5",
                 "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["model"] == "my_filter" and doc["passed"]
    assert [(r["backend"], r["variant"]) for r in doc["rows"]] == [
        ("keras", None), ("saved_model", "fp32"), ("tflite", "fp32"), ("onnx", "fp32")]
    assert all(r["output"] == "y" and r["max_abs"] <= 1e-4 for r in doc["rows"])
    assert len(doc["sizes"]) == 2 and doc["sizes"][0] != doc["sizes"][1]


def test_user_model_parity_with_samples_npz(user_export, cli, tmp_path):
    path, out = user_export
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x=np.random.default_rng(0).uniform(-1, 1, (8, 12, 20, 3)).astype(np.float32))
    result = cli("parity", "--model", path, "--out", out, "--backends", "onnx",
                 "--samples-npz", npz, "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["samples"] == 8 and [r["backend"] for r in doc["rows"]] == ["onnx"]

    np.savez(npz, image=np.zeros((8, 12, 20, 3), np.float32))
    result = cli("parity", "--model", path, "--out", out, "--samples-npz", npz)
    assert result.exit_code == 2 and "it needs the inputs ['x']" in result.output
