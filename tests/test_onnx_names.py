"""ONNX tensor names: the graph's inputs and outputs keep the signature's names, and no
internal tensor may take one of them (issue 12: a TF-Hub-style SavedModel whose input is
named ``y``, as FSRCNN/ESPCN take the luma channel, gave an ONNX file onnxruntime refused:
tidying ``StatefulPartitionedCall/add/y:0`` to ``y`` made an initializer named like the input).
"""

from __future__ import annotations

import numpy as np
import pytest


def _graph(input_name: str, constants: list[str]):
    """y -> Add(c0) -> Add(c1) ... -> out, the constants named as tf2onnx names them."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, x = [], input_name
    for i, c in enumerate(constants):
        y = "out" if i == len(constants) - 1 else f"StatefulPartitionedCall/add_{i}:0"
        nodes.append(helper.make_node("Add", [x, c], [y], f"add_{i}"))
        x = y
    inits = [numpy_helper.from_array(np.array(i + 1.0, np.float32), c) for i, c in enumerate(constants)]
    vi = helper.make_tensor_value_info
    return helper.make_graph(
        nodes, "g", [vi(input_name, TensorProto.FLOAT, [None, 4])], [vi("out", TensorProto.FLOAT, [None, 4])], inits
    )


def _run(graph, feed):
    import onnxruntime as ort
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def test_tidied_names_never_take_an_input_name_or_each_other():
    from genimg_export.exporters.onnx import _rename_tensors, _tidy

    # both constants tidy to "y", the input's name: two initializers and the input share it
    graph = _graph("y", ["StatefulPartitionedCall/mul_1/y:0", "StatefulPartitionedCall/add/y:0"])
    _rename_tensors(graph, lambda name, _: _tidy(name))
    names = [t.name for t in graph.initializer]
    assert [i.name for i in graph.input] == ["y"] and [o.name for o in graph.output] == ["out"]
    assert "y" not in names and len(set(names)) == len(names), names
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(_run(graph, {"y": x}), x + 3.0)


def test_the_check_fails_on_names_tidied_without_it():
    """The same graph renamed plainly: onnxruntime refuses it, as it refused FSRCNN's file."""
    from genimg_export.exporters.onnx import _tidy

    graph = _graph("y", ["StatefulPartitionedCall/mul_1/y:0", "StatefulPartitionedCall/add/y:0"])
    tidied = {t.name: _tidy(t.name) for t in graph.initializer}
    for t in graph.initializer:
        t.name = tidied[t.name]
    for n in graph.node:
        n.input[:] = [tidied.get(x, x) for x in n.input]
    with pytest.raises(Exception, match="initializer y"):
        _run(graph, {"y": np.zeros((2, 4), np.float32)})


def test_renamed_int8_tensors_skip_an_input_named_t0():
    """The int8 graph's tensors become t0, t1...: an input already named t0 keeps the name alone."""
    from genimg_export.exporters.onnx import _rename_tensors

    graph = _graph("t0", ["c0", "c1"])
    _rename_tensors(graph, lambda _, i: f"t{i}")
    names = [t.name for t in graph.initializer]
    assert "t0" not in names and len(set(names)) == len(names), names
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(_run(graph, {"t0": x}), x + 3.0)


def test_a_saved_model_with_an_input_named_y_exports_to_onnx(cli, tmp_path):
    """One conv between the 0..255 scalings a TF-Hub SR model has, input named ``y``."""
    import onnxruntime as ort
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.random.stateless_normal([3, 3, 1, 4], seed=(1, 2)))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="y")])
    def serve(y):
        h = tf.nn.conv2d(y / 255.0 * 2.0 - 1.0, module.w, 1, "SAME")
        return {"sr": (h + 1.0) * 127.5}

    module.serve = serve
    hub = tmp_path / "hub" / "1"
    tf.saved_model.save(module, str(hub), signatures={"serving_default": serve.get_concrete_function()})
    result = cli("onnx", "--model", hub, "--out", tmp_path / "out", "--quantize", "fp32")
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "out" / "onnx").glob("*.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["y"] and [o.name for o in session.get_outputs()] == ["sr"]
    x = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"y": x})[0], serve(tf.constant(x))["sr"].numpy(), atol=1e-3)
