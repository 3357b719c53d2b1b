"""bench --by-node on a conv + LeakyReLU net: onnxruntime names the float conv it fuses with its
activation after the activation (``leaky_re_lu/LeakyRelu_nchwc``); the table must still put the
float conv's time in the conv's row, beside its int8 QLinearConv (issue 13 item 2)."""

from __future__ import annotations

import numpy as np
import pytest
from harness.user_exports import export_user_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 16), name="image")
    h = layers.LeakyReLU(0.2, name="act1")(layers.Conv2D(32, 3, padding="same", name="conv1")(x))
    h = layers.LeakyReLU(0.2, name="act2")(layers.Conv2D(32, 3, padding="same", name="conv2")(h))
    model = keras.Model(x, layers.Conv2D(16, 3, padding="same", name="out")(h), name="lrelu")
    pairs = [("onnx", "fp32"), ("onnx", "int8")]
    out, entries = export_user_model(model, tmp_path_factory.mktemp("by_node_fused"), pairs)
    paths = {e["variant"]: out / e["path"] for e in entries}
    return paths["fp32"], paths["int8"]


def test_a_fused_float_conv_is_counted_in_its_own_row(exported):
    from genimg_export.bench.by_node import compare

    feeds = {"image": np.random.default_rng(1).uniform(-1, 1, (1, 48, 48, 16)).astype(np.float32)}
    rows = compare(*exported, feeds, threads=1, runs=3)
    convs = [r for r in rows if r.int8_op == "QLinearConv"]
    assert len(convs) == 3, rows
    assert all(r.fp32_op in ("Conv", "FusedConv") and r.fp32_ms > 0 for r in convs), convs
    assert not [r for r in rows if r.fp32_op in ("Conv", "FusedConv") and r.int8_op == "-"], rows
