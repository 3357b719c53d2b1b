"""genimg-export metadata inside a .tflite file, without TensorFlow.

The exporter stores one UTF-8 JSON document (model name, variant, signatures
with tensor names/shapes/ranges, preprocessing, scale, ...) in the TFLite
``Model.metadata`` list under the name ``genimg_export``; the edge runner reads
it back. Only the flatbuffers package and LiteRT's generated schema are used,
so this works on a device that has nothing but ai-edge-litert.

Example:
    >>> data = embed_metadata(Path("m.tflite").read_bytes(), {"model": "srgan"})
    >>> read_metadata(data)["model"]
    'srgan'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from genimg_edge.errors import EdgeError

METADATA_NAME = "genimg_export"
FILE_IDENTIFIER = b"TFL3"


class ModelFileError(EdgeError):
    """A file that is not a usable .tflite model; the message says why."""


def embed_metadata(model_bytes: bytes, meta: dict[str, Any]) -> bytes:
    """Return ``model_bytes`` with ``meta`` stored as JSON under ``genimg_export``.

    An existing ``genimg_export`` entry is replaced; other metadata entries
    (e.g. ``min_runtime_version``) are kept.

    Args:
        model_bytes: a complete .tflite flatbuffer.
        meta: a JSON-serialisable dict.
    """
    model = _unpack(model_bytes, "the model to annotate")
    payload = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), np.uint8)
    model.buffers = model.buffers or []
    model.metadata = model.metadata or []
    entry = _find_entry(model)
    if entry is None:
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers)
        model.buffers.append(schema.BufferT())
        model.metadata.append(entry)
    model.buffers[entry.buffer].data = payload
    builder = flatbuffers.Builder(len(model_bytes) + payload.size + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def read_metadata(path_or_bytes: str | Path | bytes) -> dict[str, Any] | None:
    """The ``genimg_export`` metadata of a .tflite file or buffer, or None if absent.

    Raises:
        ModelFileError: missing file, or bytes that are not a TFLite flatbuffer
            (e.g. a truncated download).
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return parse_metadata(bytes(path_or_bytes), "the given bytes")
    return parse_metadata(read_model_file(path_or_bytes), str(path_or_bytes))


def parse_metadata(data: bytes, what: str) -> dict[str, Any] | None:
    """``read_metadata`` on bytes already read; ``what`` names them in errors."""
    model = _unpack(data, what)
    entry = _find_entry(model)
    if entry is None:
        return None
    raw = model.buffers[entry.buffer].data
    try:
        return json.loads(bytes(np.asarray(raw, np.uint8)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{what}: the '{METADATA_NAME}' metadata is not valid JSON: {e}") from e


def read_model_file(path: str | Path) -> bytes:
    """Read a .tflite file, with a clear error for a missing or empty one."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a directory (a SavedModel?); expected a .tflite file, e.g. out/tflite/srgan.fp32.tflite"
        )
    if not path.is_file():
        raise ModelFileError(f"no such model file: {path} (expected a .tflite file, e.g. out/tflite/srgan.fp32.tflite)")
    data = path.read_bytes()
    if not data:
        raise ModelFileError(f"{path} is empty; expected a .tflite model")
    return data


def _unpack(data: bytes, what: str) -> schema.ModelT:
    # Both checks matter: the identifier catches other file types, the full
    # unpack catches truncation (offsets that point past the end).
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelFileError(f"{what} is not a TFLite model (no 'TFL3' identifier; got {len(data)} bytes)")
    try:
        return schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # flatbuffers raises struct.error/IndexError/... on bad offsets
        raise ModelFileError(f"{what} is truncated or corrupt: it is not a complete TFLite flatbuffer ({e})") from e


def _find_entry(model: schema.ModelT) -> schema.MetadataT | None:
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return entry
    return None
