"""srgan's PReLU form (``train --prelu channel|shared``) and what the exporters make of a
one-alpha PReLU: LEAKY_RELU in TFLite (XNNPACK runs it in int8, so the full-integer
file needs no float island), as ``LeakyRelu`` in ONNX (measured in benchmarks/README.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from genimg_export.errors import InvalidInputError
from genimg_export.zoo.spec import ModelSpec, Signature, TensorSpec, tolerances

X = TensorSpec("x", "float32", (None, None, 3), (-1.0, 1.0), "image")
Y = TensorSpec("y", "float32", (None, None, 3), (-1.0, 1.0), "x2 image")


def _alphas(model) -> list[int]:
    return [layer.get_weights()[0].size for layer in model.layers if type(layer).__name__ == "PReLU"]


def test_build_makes_one_alpha_per_layer_or_per_channel():
    from genimg_export.zoo import srgan

    shared, channel = srgan.build(8, 1, prelu="shared"), srgan.build(8, 1, prelu="channel")
    assert _alphas(shared) == [1, 1, 1, 1] and _alphas(channel) == [8, 8, 8, 8]
    assert srgan.prelu_form(shared) == "shared" and srgan.prelu_form(channel) == "channel"
    with pytest.raises(InvalidInputError, match="prelu must be one of channel, shared, got 'scalar'"):
        srgan.build(8, 1, prelu="scalar")


def test_the_default_build_is_the_shipped_form():
    """`train --model srgan` (no --prelu) must rebuild what ships: same form, same weight shapes."""
    from genimg_export.zoo import registry, srgan
    from genimg_export.zoo.keras_file import load_keras

    spec = registry.get("srgan")
    shipped, card = load_keras(spec.weights_path), json.loads(spec.weights_path.with_suffix(".card.json").read_text())
    assert srgan.prelu_form(srgan.build()) == srgan.prelu_form(shipped) == card["config"]["prelu"]
    assert [w.shape for w in srgan.build().weights] == [w.shape for w in shipped.weights]


def test_train_prelu_reaches_the_build_and_the_card(cli, tmp_path):
    from genimg_export.zoo import srgan
    from genimg_export.zoo.keras_file import load_keras

    result = cli("train", "--model", "srgan", "--steps", "1", "--batch", "2", "--prelu", "shared", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "srgan.card.json").read_text())
    assert card["config"]["prelu"] == "shared"
    assert card["command"] == "genimg-export train --model srgan --steps 1 --seed 0 --prelu shared --batch 2 --out DIR"
    assert srgan.prelu_form(load_keras(tmp_path / "srgan.keras")) == "shared"


def test_prelu_is_refused_for_a_model_without_it(cli, tmp_path):
    result = cli("train", "--model", "dcgan", "--steps", "1", "--prelu", "shared", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "error: --prelu applies to models built with PReLU (srgan), not 'dcgan'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def _build(alpha):
    """conv, PReLU (``alpha``: one number, or one per channel), pixel shuffle, conv."""
    import keras
    from keras import layers

    from genimg_export.zoo.layers import PixelShuffle

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3), name="x")
    alpha = np.asarray(alpha, np.float32)
    prelu = layers.PReLU(shared_axes=[1, 2, 3] if alpha.size == 1 else [1, 2])
    h = prelu(PixelShuffle(2)(layers.Conv2D(32, 3, padding="same")(x)))
    prelu.set_weights([alpha.reshape(1, 1, -1)])
    return keras.Model(x, layers.Conv2D(3, 3, padding="same", name="y")(h), name="tiny_sr")


def _samples(n, seed=0, signature="serving_default", size=(16, 16)):
    return {"x": np.random.default_rng(seed).uniform(-1, 1, (n, *size, 3)).astype(np.float32)}


SPEC = ModelSpec(
    name="tiny_sr", task="image-to-image", description="conv, one-alpha PReLU, pixel shuffle (test model)",
    signatures=(Signature("serving_default", (X,), (Y,)),), build=lambda: _build(0.2), sample_inputs=_samples,
    calibration_inputs=lambda n, signature="serving_default": _samples(n, seed=1234), tolerances=tolerances(),
    canonical_size=(16, 16), scale=2,
)


def _ops(model_bytes: bytes) -> list[tuple[str, str]]:
    """(operator, type of its first input) for every op of the first subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = ops[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        out.append((name, types[graph.Tensors(op.Inputs(0)).Type()]))
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from genimg_export.exporters import run_all

    root = tmp_path_factory.mktemp("leaky")
    model = _build(0.2)
    outcomes = run_all(SPEC, model, root, pairs=[("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"),
                                                         ("onnx", "int8")])
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return model, root


def _run(backend, path, x):
    from genimg_export.runners import open_runner

    with open_runner(backend, path, SPEC, num_threads=1) as runner:
        return runner.run(x)["y"]


def test_tflite_writes_a_one_alpha_prelu_as_leaky_relu_in_int8(exports):
    from genimg_export.zoo import data

    model, root = exports
    x = _samples(4, seed=7, size=(16, 24))
    want = np.asarray(model(x["x"], training=False))
    fp32, int8 = root / "tflite" / "tiny_sr.fp32.tflite", root / "tflite" / "tiny_sr.int8.tflite"
    assert ("LEAKY_RELU", "FLOAT32") in _ops(fp32.read_bytes())
    assert float(np.max(np.abs(_run("tflite", fp32, x) - want))) <= 1e-5  # the same function
    ops = _ops(int8.read_bytes())
    assert ("LEAKY_RELU", "INT8") in ops and not [op for op in ops if op[0] == "PRELU"]
    assert [op for op, _ in ops].count("DEQUANTIZE") == 1  # only the output: no float island
    assert data.psnr(_run("tflite", int8, x), want) >= 30.0


def test_onnx_int8_runs_the_one_alpha_prelu_as_qlinear_leaky_relu(exports, tmp_path):
    import onnx
    import onnxruntime as ort

    _, root = exports
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(root / "onnx" / "tiny_sr.int8.onnx"), options, providers=["CPUExecutionProvider"])
    kinds = {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert "QLinearLeakyRelu" in kinds and "PRelu" not in kinds


def test_onnx_keeps_no_constant_of_the_replaced_prelu(exports):
    """tf2onnx's -alpha constant is read only by the ops LeakyRelu replaces: left in the file,
    onnxruntime warns 'Removing initializer ... not used by any node' on every load."""
    import onnx

    _, root = exports
    graph = onnx.load(str(root / "onnx" / "tiny_sr.onnx")).graph
    read = {name for node in graph.node for name in node.input}
    assert "LeakyRelu" in {n.op_type for n in graph.node}
    assert [i.name for i in graph.initializer if i.name not in read] == []


def test_the_rewrite_leaves_a_per_channel_prelu_alone(tmp_path):
    """The check that fails on the wrong input: distinct alphas are not one LeakyRelu."""
    import keras
    import tensorflow as tf

    from genimg_export.exporters.tflite_leaky import scalar_prelu_as_leaky_relu

    def converted(alpha):
        model, archive = _build(alpha), keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", model.call, [tf.TensorSpec((1, 8, 8, 3), tf.float32)])
        archive.write_out(str(tmp_path / "sm"), verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert()

    per_channel = converted(np.linspace(-0.3, 0.6, 8))
    assert scalar_prelu_as_leaky_relu(per_channel) == (per_channel, 0)
    same = converted(np.full(8, 0.25))  # one value in every channel: still a LeakyRelu
    rewritten, count = scalar_prelu_as_leaky_relu(same)
    assert count == 1 and ("LEAKY_RELU", "FLOAT32") in _ops(rewritten) and ("PRELU", "FLOAT32") in _ops(same)
