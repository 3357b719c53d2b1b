"""Exporter choices that make quantized files fast on CPU (measured in benchmarks/README.md).

- TFLite int8 with float I/O keeps PRELU in float (LiteRT's int8 PRELU is its slow
  reference kernel); ``int8_io`` files stay integer-only.
- ONNX files do the pixel shuffle in NHWC (onnxruntime's NCHW DepthToSpace is slow),
  and int8 files run it on 8-bit values instead of dequantizing to float and back.
"""

from __future__ import annotations

import numpy as np
import pytest

from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

X = TensorSpec("x", "float32", (None, None, 3), (-1.0, 1.0), "image")
Y = TensorSpec("y", "float32", (None, None, 3), (-1.0, 1.0), "x2 image")


def _build():
    import keras
    from keras import layers

    from genimg_export.zoo.layers import PixelShuffle

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3), name="x")
    prelu = layers.PReLU(shared_axes=[1, 2])  # after the pixel shuffle, as in srgan's upsampler
    h = prelu(PixelShuffle(2)(layers.Conv2D(32, 3, padding="same")(x)))
    prelu.set_weights([np.linspace(-0.3, 0.6, 8, dtype=np.float32).reshape(1, 1, 8)])
    return keras.Model(x, layers.Conv2D(3, 3, padding="same", name="y")(h), name="tiny_sr")


def _samples(n, seed=0, signature="serving_default", size=(16, 16)):
    return {"x": np.random.default_rng(seed).uniform(-1, 1, (n, *size, 3)).astype(np.float32)}


SPEC = ModelSpec(
    name="tiny_sr", task="image-to-image", description="conv, PReLU, pixel shuffle (test model)",
    signatures=(Signature("serving_default", (X,), (Y,)),), build=_build, sample_inputs=_samples,
    calibration_inputs=lambda n, signature="serving_default": _samples(n, seed=1234), tolerances=tolerances(),
    canonical_size=(16, 16), scale=2,
)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from genimg_export.exporters import run_all

    model = _build()
    root = tmp_path_factory.mktemp("speed")
    outcomes = run_all(SPEC, model, root / "float_io", pairs=[("tflite", "int8"), ("onnx", "int8")])
    outcomes += run_all(SPEC, model, root / "int8_io", pairs=[("tflite", "int8")], int8_io=True)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return model, root


def _prelu_input_types(path) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    types = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.PRELU:
            types.append(names[graph.Tensors(op.Inputs(0)).Type()])
    return types


def _psnr_vs_keras(model, backend, path) -> float:
    from genimg_export.runners import open_runner
    from genimg_export.zoo import data

    x = _samples(4, seed=7, size=(16, 24))
    with open_runner(backend, path, SPEC, num_threads=1) as runner:
        got = runner.run(x)["y"]
    return data.psnr(got, np.asarray(model(x["x"], training=False)))


def test_tflite_int8_keeps_prelu_float_only_with_float_io(exports):
    from genimg_export.exporters.tflite import has_ops

    model, root = exports
    float_io = root / "float_io" / "tflite" / "tiny_sr.int8.tflite"
    int8_io = root / "int8_io" / "tflite" / "tiny_sr.int8.tflite"
    assert has_ops(float_io.read_bytes(), ["PRELU"]) and not has_ops(float_io.read_bytes(), ["MEAN"])
    assert _prelu_input_types(float_io) == ["FLOAT32"]
    assert _prelu_input_types(int8_io) == ["INT8"]  # integer-only for integer-only accelerators
    assert _psnr_vs_keras(model, "tflite", float_io) >= 30.0


def test_onnx_int8_runs_the_pixel_shuffle_on_8_bit_values(exports, tmp_path):
    import onnx
    import onnxruntime as ort

    model, root = exports
    path = root / "float_io" / "onnx" / "tiny_sr.int8.onnx"
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(tmp_path / "optimized.onnx")).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    assert not [n for n in graph.node if n.op_type == "DepthToSpace"]
    shuffles = [n for n in graph.node if n.op_type == "Transpose" and len(n.attribute[0].ints) == 6]
    assert shuffles and all(producer.get(n.input[0]) != "DequantizeLinear" for n in shuffles)
    assert _psnr_vs_keras(model, "onnx", path) >= 30.0


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("blocksize", [2, 4])
def test_nhwc_pixel_shuffle_equals_depth_to_space_bit_for_bit(dtype, blocksize):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from genimg_export.exporters.onnx import shuffle_in_nhwc

    elem = {np.float32: TensorProto.FLOAT, np.uint8: TensorProto.UINT8}[dtype]
    graph = helper.make_graph(
        [helper.make_node("DepthToSpace", ["x"], ["y"], "d2s", blocksize=blocksize)], "g",
        [helper.make_tensor_value_info("x", elem, ["n", 3 * blocksize**2, "h", "w"])],
        [helper.make_tensor_value_info("y", elem, None)])
    reference = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewritten = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    shuffle_in_nhwc(rewritten.graph)
    assert [n.op_type for n in rewritten.graph.node].count("DepthToSpace") == 0
    x = (np.random.default_rng(0).uniform(0, 200, (2, 3 * blocksize**2, 5, 7))).astype(dtype)
    want, got = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
                 for m in (reference, rewritten))
    assert got.shape == (2, 3, 5 * blocksize, 7 * blocksize)
    np.testing.assert_array_equal(got, want)
