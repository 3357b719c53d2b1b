"""Checks of one exported artifact against its spec, shared by the export tests.

``check_artifact`` proves: the manifest's sha256 and bytes match the file (hashed
here independently of the exporters), it loads in its own runtime, and it declares
the spec's I/O names, dtypes and dynamic dims (pinned where it is fixed-size).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from genimg_export.artifacts.formats import FORMATS


def check_artifact(spec, artifact, out: Path) -> None:
    path = Path(out) / artifact.path
    assert path.exists(), path
    assert artifact.sha256 == sha256(path), "manifest sha256 does not match the file"
    assert artifact.bytes == _bytes(path)
    if artifact.fixed_size:
        assert artifact.options.get("fixed_size_reason"), "a fixed-size export says why"
    CHECKS[artifact.format](spec, artifact, path)


def sha256(path: Path) -> str:
    """Independent of genimg_export.fs: a file's hash, or a directory's over sorted (path, hash)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    lines = "".join(
        f"{p.relative_to(path).as_posix()}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
        for p in sorted(path.rglob("*")) if p.is_file()
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def _bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _want_dims(spec, tensor, artifact, output: bool) -> list:
    """Declared dims without batch; dynamic H x W pinned where the artifact is fixed-size."""
    dims = list(tensor.shape)
    if artifact.fixed_size and tensor.is_image and None in dims[:2]:
        scale = spec.scale if output else 1
        dims[:2] = [d * scale for d in artifact.fixed_size]
    return dims


def _check_saved_model(spec, artifact, path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == sorted(s.name for s in spec.signatures)
    for sig in spec.signatures:
        fn = loaded.signatures[sig.name]
        inputs = fn.structured_input_signature[1]
        assert sorted(inputs) == sorted(t.name for t in sig.inputs)
        for t in sig.inputs:
            assert inputs[t.name].dtype.name == t.dtype
            assert inputs[t.name].shape.as_list() == [None, *_want_dims(spec, t, artifact, False)]
        outputs = fn.structured_outputs
        assert sorted(outputs) == sorted(t.name for t in sig.outputs)
        for t in sig.outputs:
            assert outputs[t.name].dtype.name == t.dtype
    assert (path / "assets.extra" / "tf_serving_warmup_requests").is_file()


def _check_tflite(spec, artifact, path):
    from ai_edge_litert.interpreter import Interpreter

    from genimg_edge.metadata import read_metadata

    interpreter = Interpreter(model_path=str(path))
    listed = interpreter.get_signature_list()
    assert sorted(listed) == sorted(s.name for s in spec.signatures)
    int8_io = artifact.options.get("int8_io", False)
    for sig in spec.signatures:
        runner = interpreter.get_signature_runner(sig.name)
        for details, tensors, output in ((runner.get_input_details(), sig.inputs, False),
                                         (runner.get_output_details(), sig.outputs, True)):
            assert sorted(details) == sorted(t.name for t in tensors)
            for t in tensors:
                d = details[t.name]
                float_dtype = np.int8 if int8_io and t.dtype == "float32" else np.dtype(t.dtype)
                assert np.dtype(d["dtype"]) == float_dtype, f"{t.name}: {d['dtype']}"
                batch = FORMATS["tflite"].fixed_batch if artifact.fixed_size else None  # retraced with every dim known
                want = [-1 if x is None else x for x in [batch, *_want_dims(spec, t, artifact, output)]]
                if not output:  # output shape signatures are not always propagated by LiteRT
                    assert list(d["shape_signature"]) == want, f"{t.name}: {d['shape_signature']} != {want}"
    meta = read_metadata(path)
    assert meta["model"] == spec.name and meta["variant"] == artifact.variant and meta["format"] == "tflite"
    assert meta["fixed_size"] == artifact.fixed_size
    assert meta["signatures"] == artifact.signatures
    assert meta["source_sha256"] == artifact.source_sha256


def _check_onnx(spec, artifact, path):
    import onnx
    import onnxruntime as ort

    from genimg_export.exporters.onnx import read_metadata

    (sig_name,) = artifact.signatures
    sig = spec.signature(sig_name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sides = ((session.get_inputs(), sig.inputs, False), (session.get_outputs(), sig.outputs, True))
    for values, tensors, output in sides:
        assert sorted(v.name for v in values) == sorted(t.name for t in tensors)
        by_name = {v.name: v for v in values}
        for t in tensors:
            v = by_name[t.name]
            assert v.type == {"float32": "tensor(float)", "int32": "tensor(int32)"}[t.dtype]
            got = [None if isinstance(d, str) or d is None else d for d in v.shape]
            assert got == [None, *_want_dims(spec, t, artifact, output)], f"{t.name}: {v.shape}"
    meta = read_metadata(path)
    assert meta["model"] == spec.name and meta["variant"] == artifact.variant and meta["format"] == "onnx"
    assert json.dumps(meta["signatures"], sort_keys=True) == json.dumps(artifact.signatures, sort_keys=True)
    graph = onnx.load(str(path)).graph
    read = {name for node in graph.node for name in node.input}
    assert not [i.name for i in graph.initializer if i.name not in read], "constants no node reads"
    if artifact.variant == "int8":
        ops = {n.op_type for n in graph.node}
        assert "QuantizeLinear" in ops and "ConvInteger" not in ops  # static QDQ, not quantize_dynamic
        assert isinstance(artifact.options["reduce_range"], bool)


CHECKS = {"saved_model": _check_saved_model, "tflite": _check_tflite, "onnx": _check_onnx}


