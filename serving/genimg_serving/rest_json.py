"""JSON <-> numpy for TF Serving's REST API (both ends).

Follows TF Serving's json_tensor.cc: numbers as nested lists, binary strings
as ``{"b64": "..."}`` (and outputs whose name ends in ``_bytes``), NaN and
Infinity written as bare literals, and a value must match the signature's
dtype (``1.5`` for an int32 input is an error, not a silent cast).
"""

from __future__ import annotations

import base64
import json

import numpy as np

from genimg_serving.protos import types_pb2
from genimg_serving.tensors import dtype_name, numpy_dtype

B64 = "b64"
_KINDS = {"f": "iuf", "c": "iufc", "i": "iu", "u": "iu", "b": "b"}  # target kind -> JSON kinds accepted


class JsonTensorError(ValueError):
    """A JSON value that cannot become a tensor of the wanted dtype."""


def is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64), str)


def to_array(value, data_type: int) -> np.ndarray:
    """A dense array of ``data_type`` from nested JSON lists."""
    if data_type == types_pb2.DT_STRING:
        return _string_array(value)
    dtype = numpy_dtype(data_type)
    try:
        array = np.array(value)
    except ValueError as e:  # ragged nesting
        raise JsonTensorError(f"JSON lists are not rectangular (every row must have the same length): {e}") from e
    if array.size and array.dtype.kind not in _KINDS[dtype.kind]:
        bad = _first_bad_leaf(value, _KINDS[dtype.kind])
        raise JsonTensorError(
            f"JSON Value: {json.dumps(bad)} Type: {_json_type(bad)} is not of expected"
            f" type: {dtype_name(data_type)}"
        )
    return array.astype(dtype)


def _string_array(value) -> np.ndarray:
    def walk(v):
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str):
            return v.encode("utf-8")
        if is_b64(v):
            try:
                return base64.b64decode(v[B64], validate=True)
            except ValueError as e:
                raise JsonTensorError("Unable to base64 decode") from e
        raise JsonTensorError(
            f"JSON Value: {json.dumps(v)} Type: {_json_type(v)} is not of expected type: string"
        )

    out = np.array(walk(value), dtype=object)
    if any(not isinstance(v, bytes) for v in out.reshape(-1)):  # ragged: lists left inside
        raise JsonTensorError("JSON lists are not rectangular (every row must have the same length)")
    return out


def _first_bad_leaf(value, kinds: str):
    if isinstance(value, list):
        for v in value:
            bad = _first_bad_leaf(v, kinds)
            if bad is not _OK:
                return bad
        return _OK
    kind = "b" if isinstance(value, bool) else "i" if isinstance(value, int) else (
        "f" if isinstance(value, float) else "?")
    return _OK if kind in kinds else value


_OK = object()


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    return {str: "String", dict: "Object", list: "Array"}.get(type(value), type(value).__name__)


def to_json(array: np.ndarray, as_bytes: bool = False):
    """Nested lists for JSON; strings as text, or as {"b64": ...} when ``as_bytes``."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        def one(v):
            v = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            if as_bytes:
                return {B64: base64.b64encode(v).decode("ascii")}
            return v.decode("utf-8", errors="replace")
        flat = [one(v) for v in array.reshape(-1)]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.shape else flat[0]
    if array.dtype.kind == "c":
        raise JsonTensorError(f"Failed to write JSON value for tensor type: {array.dtype}")
    if array.dtype.kind == "f":  # float64 -> Python float is a plain copy: twice as fast
        return array.astype(np.float64).tolist()
    return array.tolist()


def dumps(obj) -> bytes:
    """JSON with NaN/Infinity literals, as TF Serving writes them."""
    return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode("utf-8")
