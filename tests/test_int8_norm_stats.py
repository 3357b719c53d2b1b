"""Int8 files keep a normalisation's statistics float (issue 12, CycleGAN's instance norms):
the finders name each norm's mean / variance / 1/sqrt chain, both converters keep it float
while the convs stay int8, the manifest records it, and nothing else matches."""

from __future__ import annotations

import numpy as np
import pytest
from harness.user_exports import export_user_model


def _model():
    """Two convs, each followed by a norm as users write them: Keras' GroupNormalization with a
    group per channel (instance norm), and the conformance zoo's hand-written InstanceNorm."""
    import keras
    from conformance.layers import InstanceNorm
    from keras import layers

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3), name="image")
    h = layers.ReLU()(layers.GroupNormalization(groups=16)(layers.Conv2D(16, 3, padding="same")(x)))
    h = layers.ReLU()(InstanceNorm()(layers.Conv2D(16, 3, padding="same")(h)))
    return keras.Model(x, layers.Conv2D(3, 3, padding="same", activation="tanh", name="out")(h), name="normed")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pairs = [("onnx", "int8"), ("tflite", "int8")]
    out, entries = export_user_model(_model(), tmp_path_factory.mktemp("norm_stats"), pairs)
    return out, {e["format"]: e for e in entries}


def test_tflite_int8_keeps_each_norms_statistics_float_and_its_convs_int8(exported):
    from ai_edge_litert.interpreter import Interpreter

    out, entries = exported
    assert len(entries["tflite"]["options"]["float_statistics"]) == 2, entries["tflite"]["options"]
    it = Interpreter(model_path=str(out / entries["tflite"]["path"]))
    dtype = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    rsqrt = [dtype[o["outputs"][0]] for o in ops if o["op_name"] == "RSQRT"]
    convs = [dtype[o["inputs"][1]] for o in ops if o["op_name"] == "CONV_2D"]
    assert rsqrt == [np.float32, np.float32] and convs == [np.int8] * 3, (rsqrt, convs)


def test_onnx_int8_keeps_each_norms_statistics_float_and_its_convs_int8(exported):
    import onnx

    out, entries = exported
    assert len(entries["onnx"]["options"]["float_statistics"]) == 2, entries["onnx"]["options"]
    graph = onnx.load(str(out / entries["onnx"]["path"])).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    sqrt_inputs = [producer.get(n.input[0]) for n in graph.node if n.op_type == "Sqrt"]
    conv_weights = [producer.get(n.input[1]) for n in graph.node if n.op_type == "Conv"]
    assert sqrt_inputs == ["Add", "Add"], sqrt_inputs  # not a DequantizeLinear: float all the way
    assert conv_weights and set(conv_weights) == {"DequantizeLinear"}, conv_weights


def _graph(square_of_difference: bool):
    """y = x * 1 / sqrt(mean(a * b) + eps) in ONNX: a norm when a = b = x - mean(x)."""
    from onnx import TensorProto, helper, numpy_helper

    b = "d" if square_of_difference else "x"
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["m"], "mean"),
        helper.make_node("Sub", ["x", "m"], ["d"], "sub"),
        helper.make_node("Mul", ["d", b], ["sq"], "square"),
        helper.make_node("GlobalAveragePool", ["sq"], ["v"], "variance"),
        helper.make_node("Add", ["v", "eps"], ["ve"], "add"),
        helper.make_node("Sqrt", ["ve"], ["s"], "sqrt"),
        helper.make_node("Reciprocal", ["s"], ["g"], "gain"),
        helper.make_node("Mul", ["d", "g"], ["y"], "normed"),
    ]
    vi = helper.make_tensor_value_info
    return helper.make_graph(nodes, "g", [vi("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                             [vi("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                             [numpy_helper.from_array(np.array(1e-5, np.float32), "eps")])


def test_the_onnx_finder_takes_the_whole_chain_and_only_a_variance():
    from genimg_export.exporters.norm_stats import onnx_nodes

    assert onnx_nodes(_graph(True)) == [["sqrt", "add", "variance", "square", "sub", "mean", "gain", "normed"]]
    assert onnx_nodes(_graph(False)) == []  # sqrt(mean(d * x)) is no variance: left as it is
