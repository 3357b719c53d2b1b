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

B64 = "b64"
_KINDS = {"f": "iuf", "c": "iufc", "i": "iu", "u": "iu", "b": "b"}  # target kind -> JSON kinds accepted


class JsonTensorError(ValueError):
    """A JSON value that cannot become a tensor of the wanted dtype."""


class JsonTensorUnsupported(JsonTensorError):
    """A dtype TF Serving's REST API does not convert from JSON (half, complex): UNIMPLEMENTED."""


def is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64), str)


def to_array(value, data_type: int) -> np.ndarray:
    """A dense array of ``data_type`` from nested JSON lists.

    As strict as TF Serving's json_tensor.cc AddValueToTensor: an int32 input
    takes only JSON integers that fit an int32 (4294967297 is "not of expected
    type", not wrapped), int64 only those that fit an int64, float only values
    a float holds without loss; half and complex are not converted at all.
    """
    from genimg_serving.protos import types_pb2  # the server's side: TF protos ([server] extra)
    from genimg_serving.tensors import dtype_name, numpy_dtype

    if data_type == types_pb2.DT_STRING:
        return _string_array(value)
    dtype = numpy_dtype(data_type)
    if dtype.kind == "c" or dtype == np.float16:
        raise JsonTensorUnsupported(
            f"Conversion of JSON Value: {short(value)} to type: {dtype_name(data_type)}")
    try:
        array = np.array(value)
    except (ValueError, OverflowError) as e:  # ragged nesting
        raise JsonTensorError(f"JSON lists are not rectangular (every row must have the same length): {e}") from e
    kinds = _KINDS[dtype.kind]
    if array.size and array.dtype.kind not in kinds:
        raise _type_error(_first_bad_leaf(value, kinds, dtype), data_type)
    if array.size and dtype.kind in "iu" and not _fits(array, _int_bounds(dtype)):
        raise _type_error(_first_bad_leaf(value, kinds, dtype), data_type)
    if array.size and dtype.kind == "f":
        _check_lossless(array, dtype, value)
    return array.astype(dtype)


def _int_bounds(dtype: np.dtype) -> tuple[int, int]:
    """What json_tensor.cc accepts: an int32 for int32/16/8 and uint8 (IsInt), else the type's range."""
    if dtype in (np.int64, np.uint64, np.uint32):
        info = np.iinfo(dtype)
        return int(info.min), int(info.max)
    return -(2**31), 2**31 - 1


def _fits(array: np.ndarray, bounds) -> bool:
    lo, hi = bounds
    return int(array.min()) >= lo and int(array.max()) <= hi


def _check_lossless(array: np.ndarray, dtype: np.dtype, value) -> None:
    """A float input refuses integers beyond 2^24-1 and decimals beyond float32's range
    (TF Serving's IsLosslessDecimal); NaN and Infinity pass."""
    if array.dtype.kind in "iu":
        limit = 2 ** np.finfo(dtype).nmant * 2 - 1
        bad = np.abs(array.astype(object)) > limit
    else:
        finite = np.where(np.isfinite(array), array, 0.0)
        bad = np.abs(finite) > np.finfo(dtype).max
    if np.any(bad):
        leaf = array.reshape(-1)[int(np.argmax(np.asarray(bad).reshape(-1)))]
        raise JsonTensorError(
            f"Cannot convert JSON value: {leaf} to {dtype_name_np(dtype)} without loss of precision.")


def dtype_name_np(dtype: np.dtype) -> str:
    return {"float32": "float", "float64": "double"}.get(dtype.name, dtype.name)


def _type_error(bad, data_type: int) -> JsonTensorError:
    from genimg_serving.tensors import dtype_name

    return JsonTensorError(
        f"JSON Value: {json.dumps(bad)} Type: {json_type(bad)} is not of expected"
        f" type: {dtype_name(data_type)}")


def short(value, limit: int = 200) -> str:
    """A JSON value for an error message, cut at ``limit`` characters."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
            f"JSON Value: {json.dumps(v)} Type: {json_type(v)} is not of expected type: string"
        )

    out = np.array(walk(value), dtype=object)
    if any(not isinstance(v, bytes) for v in out.reshape(-1)):  # ragged: lists left inside
        raise JsonTensorError("JSON lists are not rectangular (every row must have the same length)")
    return out


def _first_bad_leaf(value, kinds: str, dtype: np.dtype):
    """The first JSON leaf a ``dtype`` input cannot take (its kind, or its range)."""
    if isinstance(value, list):
        for v in value:
            bad = _first_bad_leaf(v, kinds, dtype)
            if bad is not _OK:
                return bad
        return _OK
    kind = "b" if isinstance(value, bool) else "i" if isinstance(value, int) else (
        "f" if isinstance(value, float) else "?")
    if kind not in kinds:
        return value
    if kind == "i" and dtype.kind in "iu":
        lo, hi = _int_bounds(dtype)
        return _OK if lo <= value <= hi else value
    return _OK


_OK = object()


def json_type(value) -> str:
    """rapidjson's name for a JSON value's type, as TF Serving's messages print it."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    return {str: "String", dict: "Object", list: "Array"}.get(type(value), type(value).__name__)


def to_json(array: np.ndarray, as_bytes: bool = False):
    """Nested lists for JSON; strings as text, or as {"b64": ...} when ``as_bytes``
    (TF Serving: outputs named ``*_bytes``) or when they are not valid UTF-8
    (TF Serving would write the raw bytes into the JSON, which a client cannot read back)."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        def one(v):
            v = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            if not as_bytes:
                try:
                    return v.decode("utf-8")
                except UnicodeDecodeError:
                    pass  # bytes that are not text: base64, not a lossy string
            return {B64: base64.b64encode(v).decode("ascii")}
        flat = [one(v) for v in array.reshape(-1)]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.shape else flat[0]
    if array.dtype.kind == "c":
        raise JsonTensorError(f"Failed to write JSON value for tensor type: {array.dtype}")
    if array.dtype == np.float32 or array.dtype == np.float16:
        return float32_decimals(array.astype(np.float32)).tolist()
    if array.dtype.kind == "f":  # float64 -> Python float is a plain copy: twice as fast
        return array.astype(np.float64).tolist()
    return array.tolist()


def float32_decimals(values: np.ndarray) -> np.ndarray:
    """float64s whose shortest text is the float32's decimal, as TF Serving writes a float
    (json_tensor.cc WriteDecimal: 6 significant digits when they read back as the same
    float32, else 9): 0.1f is written 0.1, not 0.10000000149011612. Vectorised: rint of the
    value scaled to N digits, then one correctly rounded division (or product) by an exact
    power of ten gives the double nearest that decimal; a value whose 6-digit decimal does
    not read back as itself takes the 9-digit one (9 digits always do), checked again."""
    with np.errstate(invalid="ignore"):  # a NaN's payload bits do not survive the cast; NaN stays NaN
        exact = values.astype(np.float64).reshape(-1)
    out = exact.copy()
    todo = np.isfinite(exact) & (exact != 0)
    for digits in (6, 9):
        if not todo.any():
            break
        v = exact[todo]
        shift = digits - 1 - np.floor(np.log10(np.abs(v)))
        scale = 10.0 ** np.abs(shift)  # exact up to 10**22
        scaled = np.where(shift >= 0, v * scale, v / scale)
        decimal = np.where(shift >= 0, np.rint(scaled) / scale, np.rint(scaled) * scale)
        same = (decimal.astype(np.float32) == v.astype(np.float32)) & (np.abs(shift) <= 22)
        idx = np.flatnonzero(todo)[same]
        out[idx] = decimal[same]
        todo[idx] = False
    return out.reshape(values.shape)


def dumps(obj) -> bytes:
    """JSON with NaN/Infinity literals, as TF Serving writes them."""
    return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode("utf-8")
