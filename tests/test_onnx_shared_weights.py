"""A weight initializer shared by a Conv and a ConvTranspose (tf2onnx merges equal constants:
tied weights, or two layers drawn from one seeded initializer) must be quantized per channel on
each node's own axis. Issue 12: CycleGAN's ONNX int8 file failed in onnxruntime with
``QLinearConv ... ComputeOutputScale: filter scale shape invalid`` (the Conv got the
ConvTranspose's axis-1 scales); ``int8_kernels.prepare`` gives each its own copy."""

from __future__ import annotations

import numpy as np
import pytest


def _tied_model():
    """x (1, 8, 8, 8) -> Conv 8->16 -> Relu -> ConvTranspose 16->8, one weight initializer."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(0, 0.1, (16, 8, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["h"], "conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"], "relu"),
        helper.make_node("ConvTranspose", ["r", "w"], ["y"], "up", pads=[1, 1, 1, 1]),
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "tied",
        [vi("x", TensorProto.FLOAT, [1, 8, 8, 8])],
        [vi("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _quantized(model, tmp_path, name: str):
    """The model through onnxruntime's static QDQ quantization, as the exporter runs it."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(1)
    batches = iter([{"x": rng.normal(0, 1, (1, 8, 8, 8)).astype(np.float32)} for _ in range(8)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    onnx.save(model, str(tmp_path / f"{name}.onnx"))
    quantize_static(
        str(tmp_path / f"{name}.onnx"),
        str(tmp_path / f"{name}.int8.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return str(tmp_path / f"{name}.int8.onnx")


def _run(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_a_weight_shared_by_conv_and_conv_transpose_quantizes_on_each_axis(tmp_path):
    from genimg_export.exporters.int8_kernels import prepare

    float_model, model = _tied_model(), _tied_model()
    records, keep = prepare(model)
    assert keep == [] and [(r["node"], r["action"]) for r in records] == [("up", "own copy of the weights")]
    x = np.random.default_rng(2).normal(0, 1, (1, 8, 8, 8)).astype(np.float32)
    want = _run(float_model.SerializeToString(), x)
    got = _run(_quantized(model, tmp_path, "prepared"), x)
    assert 20 * np.log10(np.ptp(want) / np.sqrt(np.mean((got - want) ** 2))) > 30


def test_the_shared_weight_fails_in_onnxruntime_without_the_copy(tmp_path):
    """The check above can fail: quantized as tf2onnx wrote it, onnxruntime refuses to run it."""
    path = _quantized(_tied_model(), tmp_path, "tied")
    with pytest.raises(Exception, match="filter scale shape invalid"):
        _run(path, np.zeros((1, 8, 8, 8), np.float32))
