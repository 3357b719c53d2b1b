"""The genimg_export metadata entry: round trip, replacement, model still runs."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from genimg_edge.metadata import METADATA_NAME, ModelFileError, embed_metadata, read_metadata


def _run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    runner = Interpreter(model_content=model_bytes).get_signature_runner("serving_default")
    return runner(x=x)["y"]


def test_round_trip_keeps_the_model_runnable(conv_tflite, tmp_path):
    meta = {"model": "tiny", "variant": "fp32", "value_range": [-1.0, 1.0], "note": "ünïcode"}
    annotated = embed_metadata(conv_tflite, meta)
    path = tmp_path / "tiny.fp32.tflite"
    path.write_bytes(annotated)

    assert read_metadata(conv_tflite) is None
    assert read_metadata(annotated) == meta
    assert read_metadata(path) == meta
    x = np.random.default_rng(1).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(annotated, x), _run(conv_tflite, x))


def test_re_embedding_replaces_the_entry(conv_tflite):
    once = embed_metadata(conv_tflite, {"model": "a", "big": "x" * 1000})
    twice = embed_metadata(once, {"model": "b"})
    assert read_metadata(twice) == {"model": "b"}
    names = _metadata_names(twice)
    assert names.count(METADATA_NAME) == 1
    assert len(twice) < len(once)  # the old payload is gone, not just shadowed


def test_other_metadata_entries_are_kept(conv_tflite):
    before = _metadata_names(conv_tflite)
    after = _metadata_names(embed_metadata(conv_tflite, {"model": "a"}))
    assert after == before + [METADATA_NAME]


@pytest.mark.parametrize("cut", [0, 7, 100, -40])
def test_truncated_or_foreign_bytes_are_rejected(conv_tflite, cut):
    data = embed_metadata(conv_tflite, {"model": "a"})
    with pytest.raises(ModelFileError, match="TFLite|truncated"):
        read_metadata(data[:cut])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        read_metadata(tmp_path / "nope.tflite")


def _metadata_names(model_bytes: bytes) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    return [m.name.decode() for m in model.metadata or []]
