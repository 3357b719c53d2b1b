"""The int8 kernel audit (issue 13): every conv of an exported int8 ONNX file meets
onnxruntime's fast symmetric int8 kernel or is recorded as kept float, the rewrites that
get it there are exact, and a scalar-alpha PReLU is exported as LeakyRelu."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _model():
    """An SR-net's awkward shapes: RGB in (3 input channels), a 1-channel mask conv (padding
    would multiply its work by 16), a scalar-alpha and a per-channel PReLU, RGB out (3 outputs)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3), name="image")
    h = layers.PReLU(shared_axes=[1, 2, 3], alpha_initializer=keras.initializers.Constant(0.2))(
        layers.Conv2D(16, 3, padding="same")(x))
    h = layers.PReLU(shared_axes=[1, 2], alpha_initializer="random_uniform")(layers.Conv2D(16, 3, padding="same")(h))
    image = layers.Conv2D(3, 3, padding="same", name="rgb")(h)
    mask = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(layers.Conv2D(1, 3, padding="same")(h))
    return keras.Model(x, [image, mask], name="awkward")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from genimg_export.exporters import run_all
    from genimg_export.zoo import loading, user

    root = tmp_path_factory.mktemp("int8_kernels")
    _model().save(root / "awkward.keras")
    rng = np.random.default_rng(0)
    np.savez(root / "calib.npz", image=rng.uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32))
    spec = user.with_calibration(loading.get_spec(str(root / "awkward.keras")), npz=root / "calib.npz")
    outcomes = run_all(spec, spec.extra["model"], root / "out", pairs=[("onnx", "fp32"), ("onnx", "int8")],
                       calibration_samples=16)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    entries = json.loads((root / "out" / "manifest.json").read_text())["artifacts"]
    assert [e.get("fixed_size") for e in entries] == [None, None]  # the rewrites keep dynamic H x W working
    return root / "out", {e["variant"]: e for e in entries}


def _unrecorded_misses(path, entry) -> list:
    import onnx

    from genimg_export.exporters.int8_kernels import audit

    kept = {r["node"] for r in entry["options"].get("int8_kernels", []) if r["action"] == "kept float"}
    return [(node, why) for node, why in audit(onnx.load(str(path))) if node not in kept]


def test_every_int8_conv_meets_the_fast_kernel_or_is_recorded_as_kept(exported):
    out, entries = exported
    assert _unrecorded_misses(out / entries["int8"]["path"], entries["int8"]) == []
    actions = {r["conv"]: r["action"] for r in entries["int8"]["options"]["int8_kernels"]}
    assert actions["3->16 k3x3 group 1"] == "inputs padded 3->4"
    assert actions["16->3 k3x3 group 1"] == "outputs padded 3->16 + Slice"
    assert actions["16->1 k3x3 group 1"] == "kept float"


def test_the_audit_catches_an_int8_file_quantized_without_the_rewrite(exported, tmp_path):
    """The check above can fail: plain static quantization of the float file misses the kernel."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    out, entries = exported
    data = iter([{"image": np.random.default_rng(i).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)}
                 for i in range(4)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(data, None)

    plain = tmp_path / "plain.int8.onnx"
    quantize_static(str(out / entries["fp32"]["path"]), str(plain), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    misses = _unrecorded_misses(plain, {"options": {}})
    assert {why for _, why in misses} >= {"3 input channels (needs a multiple of 4)",
                                          "3 output channels (needs >= 16, a multiple of 4)"}, misses


def test_the_padding_is_exact(exported, tmp_path):
    import onnx
    import onnxruntime as ort

    from genimg_export.exporters.int8_kernels import prepare

    out, entries = exported
    model = onnx.load(str(out / entries["fp32"]["path"]))
    records, keep = prepare(model)
    assert len(records) == 4 and len(keep) == 2  # two convs padded; the 16->1 and 1->1 convs kept float
    onnx.save(model, str(tmp_path / "padded.onnx"))
    x = {"image": np.random.default_rng(1).uniform(-1, 1, (2, 24, 40, 3)).astype(np.float32)}
    want = ort.InferenceSession(str(out / entries["fp32"]["path"])).run(None, x)
    got = ort.InferenceSession(str(tmp_path / "padded.onnx")).run(None, x)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)


def test_a_scalar_prelu_is_leaky_relu_and_a_per_channel_one_stays(exported):
    import onnx
    from onnx import helper

    out, entries = exported
    graph = onnx.load(str(out / entries["fp32"]["path"])).graph
    leaky = [n for n in graph.node if n.op_type == "LeakyRelu"]
    assert len(leaky) == 1 and helper.get_attribute_value(leaky[0].attribute[0]) == pytest.approx(0.2)
    ops = [n.op_type for n in graph.node]
    assert ops.count("Neg") == 1 and "PRelu" not in ops  # the per-channel one: tf2onnx's Relu(x) + Relu(-x) * -alpha


def test_by_node_names_each_layer_with_its_float_and_int8_op(exported):
    from genimg_export.bench.by_node import QDQ, compare

    out, entries = exported
    feeds = {"image": np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)}
    rows = {r.node: r for r in compare(out / entries["fp32"]["path"], out / entries["int8"]["path"], feeds, 1, 3)}
    rgb = next(r for name, r in rows.items() if name.startswith("rgb") and not name.endswith("/slice"))
    assert (rgb.fp32_op, rgb.int8_op) == ("Conv", "QLinearConv") and rgb.fp32_ms > 0 and rgb.int8_ms > 0
    assert rows[QDQ].fp32_ms == 0 and rows[QDQ].slower_in_int8  # only the int8 graph has them
    assert any(r.int8_op == "Conv" for r in rows.values())  # the 16->1 conv kept float
