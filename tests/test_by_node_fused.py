"""bench --by-node on a conv + LeakyReLU net: onnxruntime names the float conv it fuses with its
activation after the activation (``leaky_re_lu/LeakyRelu_nchwc``); the table must still put the
float conv's time in the conv's row, beside its int8 QLinearConv (issue 13 item 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras
    from keras import layers

    from genimg_export.exporters import run_all
    from genimg_export.zoo import loading, user

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 16), name="image")
    h = layers.LeakyReLU(0.2, name="act1")(layers.Conv2D(32, 3, padding="same", name="conv1")(x))
    h = layers.LeakyReLU(0.2, name="act2")(layers.Conv2D(32, 3, padding="same", name="conv2")(h))
    root = tmp_path_factory.mktemp("by_node_fused")
    keras.Model(x, layers.Conv2D(16, 3, padding="same", name="out")(h)).save(root / "lrelu.keras")
    np.savez(root / "calib.npz", image=np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 16)).astype(np.float32))
    spec = user.with_calibration(loading.get_spec(str(root / "lrelu.keras")), npz=root / "calib.npz")
    outcomes = run_all(spec, spec.extra["model"], root / "out", pairs=[("onnx", "fp32"), ("onnx", "int8")],
                       calibration_samples=16)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    entries = json.loads((root / "out" / "manifest.json").read_text())["artifacts"]
    paths = {e["variant"]: root / "out" / e["path"] for e in entries}
    return paths["fp32"], paths["int8"]


def test_a_fused_float_conv_is_counted_in_its_own_row(exported):
    from genimg_export.bench.by_node import compare

    feeds = {"image": np.random.default_rng(1).uniform(-1, 1, (1, 48, 48, 16)).astype(np.float32)}
    rows = compare(*exported, feeds, threads=1, runs=3)
    convs = [r for r in rows if r.int8_op == "QLinearConv"]
    assert len(convs) == 3, rows
    assert all(r.fp32_op in ("Conv", "FusedConv") and r.fp32_ms > 0 for r in convs), convs
    assert not [r for r in rows if r.fp32_op in ("Conv", "FusedConv") and r.int8_op == "-"], rows
