"""Runners: one interface over keras, saved_model, tflite and onnx (grpc/rest: serving tests)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from harness.zoo_exports import exported

from genimg_export.errors import InvalidInputError, NotFoundError
from genimg_export.runners import BACKENDS, open_runner, runner_class
from genimg_export.runners.discover import discover

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
LOCAL = [("saved_model", "fp32"), ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")]


def _target(ex, backend, variant):
    return next(t for t in discover(ex.spec, ex.out, [backend]) if t.variant == variant)


def test_backend_table_lists_every_runner_and_imports_lazily():
    assert list(BACKENDS) == ["keras", "saved_model", "tflite", "onnx", "grpc", "rest", "v2"]
    for backend in ("keras", "saved_model", "tflite", "onnx"):
        assert runner_class(backend).backend == backend
    with pytest.raises(InvalidInputError, match="did you mean 'onnx'"):
        runner_class("onxx")


@pytest.mark.parametrize("backend,variant", LOCAL, ids=[f"{b}-{v}" for b, v in LOCAL])
def test_runner_runs_a_non_square_batch(backend, variant):
    ex = exported("srgan")
    lr = ex.spec.sample_inputs(3, seed=5, size=(12, 20))["lr"]
    options = {} if backend == "saved_model" else {"num_threads": 2}
    with open_runner(backend, _target(ex, backend, variant).artifact, ex.spec, **options) as r:
        out = r.run({"lr": lr})
    assert list(out) == ["hr"]
    assert out["hr"].shape == (3, 48, 80, 3) and out["hr"].dtype == np.float32
    ref = np.asarray(ex.model(lr, training=False))
    assert np.abs(out["hr"] - ref).max() < (1e-4 if variant == "fp32" else 0.2)


def test_keras_runner_matches_the_model_and_checks_inputs():
    ex = exported("srgan")
    r = open_runner("keras", None, ex.spec, model=ex.model)
    lr = ex.spec.sample_inputs(2, size=(8, 8))["lr"]
    np.testing.assert_array_equal(r.run({"lr": lr})["hr"], np.asarray(ex.model(lr, training=False)))
    with pytest.raises(InvalidInputError, match=r"takes inputs \['lr'\], got \['image'\]"):
        r.run({"image": lr})
    with pytest.raises(InvalidInputError, match="must have shape"):
        r.run({"lr": lr[0]})


@pytest.mark.parametrize("backend,path", [
    ("saved_model", "serving/srgan/99"), ("tflite", "tflite/nope.tflite"), ("onnx", "onnx/nope.onnx"),
])
def test_missing_artifact_is_not_found(backend, path):
    ex = exported("srgan")
    with pytest.raises(NotFoundError, match="no (SavedModel|TFLite file|ONNX file) at"):
        open_runner(backend, ex.out / path, ex.spec)


def test_unknown_signature_is_not_found():
    ex = exported("srgan")
    with pytest.raises(NotFoundError, match="no signature 'encode'"):
        open_runner("tflite", ex.out / "tflite/srgan.fp32.tflite", ex.spec, signature="encode")


def test_tflite_runner_quantizes_int8_io(tmp_path):
    """A tiny model exported with int8 inputs and outputs: the runner feeds floats
    through the tensor's scale and zero point and returns dequantized floats."""
    from harness.tiny import tiny_spec

    from genimg_export.exporters import run_all

    spec, model = tiny_spec()
    outcomes = run_all(spec, model, tmp_path, pairs=[("tflite", "int8")], int8_io=True)
    assert outcomes[0].ok, outcomes[0].error
    path = tmp_path / "tflite/tiny.int8.tflite"
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_signature_runner().get_input_details()
    assert details["x"]["dtype"] == np.int8, "the export should have int8 I/O"
    x = spec.sample_inputs(4, seed=3, size=(16, 24))["x"]
    with open_runner("tflite", path, spec) as r:
        y = r.run({"x": x})["y"]
    ref = np.asarray(model(x, training=False))
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert np.abs(y - ref).max() < 0.1
