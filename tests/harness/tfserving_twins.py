"""Twins of TF Serving's test models, built with TensorFlow in a few seconds.

TF Serving's own tests serve ``saved_model_half_plus_two_*`` and
``saved_model_half_plus_three`` (tensorflow_serving/servables/tensorflow/testdata,
made by its saved_model_half_plus_two.py with TF1's SavedModelBuilder). A fresh
clone does not have them, so these functions build models with the same graph
names, signatures, dtypes and shapes in the same folder layout:

    <root>/saved_model_half_plus_two_cpu/00000123/
    <root>/saved_model_half_plus_two_2_versions/00000123/ and 00000124/
    <root>/saved_model_half_plus_three/00000123/

Signatures (as TF Serving's half_plus_two has them): ``serving_default`` x:0 -> y:0
(float, [-1, 1]); ``classify_x_to_y`` and ``regress_x_to_y`` / ``regress_x_to_y2``
on serialized tf.Examples (tf_example:0, unknown rank); ``regress_x2_to_y3``
x2:0 -> y3:0. half_plus_three is the older export whose TensorInfos carry no
shape at all, which is what trips ``tf.saved_model.load``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DEFAULT = REPO.parent / "shared" / "tfserving-testdata"


def shared_testdata() -> Path:
    """Where TF Serving's own copies are looked for (GENIMG_TFSERVING_TESTDATA overrides;
    point it at a missing folder to run as a fresh clone would)."""
    return Path(os.environ.get("GENIMG_TFSERVING_TESTDATA", SHARED_DEFAULT))


# The contract tests run on the twins, and also on TF Serving's copies when they are there.
SOURCES = ["twin"] + (["shared"] if (shared_testdata() / "saved_model_half_plus_two_cpu").is_dir() else [])

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def build_testdata(root: Path) -> Path:
    """All twins under ``root`` in the shared folder's layout; returns ``root``."""
    write_half_plus_two(root / "saved_model_half_plus_two_cpu" / "00000123")
    for version in ("00000123", "00000124"):
        write_half_plus_two(root / "saved_model_half_plus_two_2_versions" / version, two_versions=True)
    write_half_plus_three(root / "saved_model_half_plus_three" / "00000123")
    return root


def _graph(offset_b: float, offset_c: float):
    """y = a*x + b, y2 = a*x + c, y3 = a*x2 + c, with x parsed from tf.Examples."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(offset_b, name="b")
        c = v1.Variable(offset_c, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example")  # no shape: unknown rank
        features = tf.io.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([1], tf.float32),
            "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
        })
        for value in features.values():
            value.set_shape([None, 1])  # ParseExampleV2 leaves it unknown for an unknown-rank input
        t = {"tf_example": serialized, "x": tf.identity(features["x"], name="x"),
             "x2": tf.identity(features["x2"], name="x2")}
        t["y"] = tf.add(a * t["x"], b, name="y")
        t["y2"] = tf.add(a * t["x"], c, name="y2")
        t["y3"] = tf.add(a * t["x2"], c, name="y3")
    return graph, t


def _save(path: Path, graph, signatures: dict) -> Path:
    import tensorflow as tf

    v1 = tf.compat.v1
    tmp = path.with_name(f".tmp-{path.name}")
    with graph.as_default(), v1.Session(graph=graph) as session:
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(tmp))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.rename(tmp, path)  # a server never sees half a version
    return path


def info(tensor):
    """A TensorInfo naming a graph tensor (build_tensor_info, without its eager guard)."""
    from tensorflow.core.protobuf import meta_graph_pb2

    return meta_graph_pb2.TensorInfo(name=tensor.name, dtype=tensor.dtype.as_datatype_enum,
                                     tensor_shape=tensor.shape.as_proto())


def _sig(method: str, inputs: dict, outputs: dict):
    from tensorflow.core.protobuf import meta_graph_pb2

    sig = meta_graph_pb2.SignatureDef(method_name=method)
    for key, info in inputs.items():
        sig.inputs[key].CopyFrom(info)
    for key, info in outputs.items():
        sig.outputs[key].CopyFrom(info)
    return sig


def write_half_plus_two(path: Path, offset: float = 2.0, two_versions: bool = False) -> Path:
    """TF Serving's saved_model_half_plus_two: y = 0.5 x + ``offset``; the copy in
    saved_model_half_plus_two_2_versions also has classify_x2_to_y3."""
    graph, t = _graph(offset, 3.0)
    signatures = {
        "serving_default": _sig(PREDICT, {"x": info(t["x"])}, {"y": info(t["y"])}),
        "classify_x_to_y": _sig(CLASSIFY, {"inputs": info(t["tf_example"])}, {"scores": info(t["y"])}),
        "regress_x_to_y": _sig(REGRESS, {"inputs": info(t["tf_example"])}, {"outputs": info(t["y"])}),
        "regress_x_to_y2": _sig(REGRESS, {"inputs": info(t["tf_example"])}, {"outputs": info(t["y2"])}),
        "regress_x2_to_y3": _sig(REGRESS, {"inputs": info(t["x2"])}, {"outputs": info(t["y3"])}),
    }
    if two_versions:
        signatures["classify_x2_to_y3"] = _sig(CLASSIFY, {"inputs": info(t["x2"])}, {"scores": info(t["y3"])})
    return _save(path, graph, signatures)


def write_half_plus_three(path: Path) -> Path:
    """TF Serving's saved_model_half_plus_three: y = 0.5 x + 3, TensorInfos without shapes.

    Its regress signature also names tf_example:0 as DT_FLOAT (the original's own
    quirk), kept so that loading it exercises the same path.
    """
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    graph, _ = _graph(3.0, 3.0)

    def bare(name):  # a TensorInfo with no tensor_shape: what the old exporter wrote
        return meta_graph_pb2.TensorInfo(name=name, dtype=types_pb2.DT_FLOAT)

    signatures = {
        "serving_default": _sig(PREDICT, {"x": bare("x:0")}, {"y": bare("y:0")}),
        REGRESS: _sig(REGRESS, {"inputs": bare("tf_example:0")}, {"outputs": bare("y:0")}),
    }
    return _save(path, graph, signatures)
