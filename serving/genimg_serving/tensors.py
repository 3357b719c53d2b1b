"""numpy arrays <-> TensorProto, for every dtype TF Serving carries.

Requests carry numbers as ``tensor_content`` (raw little-endian bytes, the fast
path); strings as ``string_val``. Replies fill the typed repeated fields
(``float_val``, ``half_val``, ``int_val`` ...) as TF Serving does by default, or
``tensor_content`` when asked (its ``--enable_serialization_as_tensor_content``).
Reading accepts both.
"""

from __future__ import annotations

import numpy as np

from genimg_serving.protos import tensor_pb2, types_pb2

DT = types_pb2.DataType

# DataType -> numpy dtype, and which repeated field holds the values when
# tensor_content is empty.
_NUMPY = {
    DT.DT_FLOAT: (np.float32, "float_val"),
    DT.DT_DOUBLE: (np.float64, "double_val"),
    DT.DT_INT32: (np.int32, "int_val"),
    DT.DT_UINT8: (np.uint8, "int_val"),
    DT.DT_INT16: (np.int16, "int_val"),
    DT.DT_INT8: (np.int8, "int_val"),
    DT.DT_UINT16: (np.uint16, "int_val"),
    DT.DT_INT64: (np.int64, "int64_val"),
    DT.DT_BOOL: (np.bool_, "bool_val"),
    DT.DT_HALF: (np.float16, "half_val"),
    DT.DT_UINT32: (np.uint32, "uint32_val"),
    DT.DT_UINT64: (np.uint64, "uint64_val"),
    DT.DT_COMPLEX64: (np.complex64, "scomplex_val"),
    DT.DT_COMPLEX128: (np.complex128, "dcomplex_val"),
}
_BY_NUMPY = {np.dtype(t): dt for dt, (t, _) in _NUMPY.items()}


INT64_MAX = 2**63 - 1
MAX_EXPANDED_BYTES = 2**31  # the most a tensor given by fewer values than elements may take


class TensorConversionError(ValueError):
    """An array or TensorProto that cannot be converted; the message says why."""


def dtype_name(dt: int) -> str:
    """'float', 'int32', 'string' ... the way TF prints a DataType (DT_FLOAT -> float)."""
    try:
        return DT.Name(dt)[3:].lower()
    except ValueError:
        return f"unknown dtype {dt}"


def numpy_dtype(dt: int) -> np.dtype:
    """The numpy dtype for a DataType (object for strings)."""
    if dt == DT.DT_STRING:
        return np.dtype(object)
    if dt not in _NUMPY:
        raise TensorConversionError(f"dtype {dtype_name(dt)} is not supported")
    return np.dtype(_NUMPY[dt][0])


def data_type(dtype) -> int:
    """The DataType for a numpy dtype (str/bytes/object arrays are DT_STRING)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return DT.DT_STRING
    if dtype.newbyteorder("=") in _BY_NUMPY:
        return _BY_NUMPY[dtype.newbyteorder("=")]
    raise TensorConversionError(
        f"numpy dtype {dtype} has no TensorFlow equivalent; use e.g. float32, int32, uint8 or str"
    )


def to_tensor_proto(array, dtype: int | None = None, out=None,
                    content: bool = True) -> tensor_pb2.TensorProto:
    """A TensorProto holding ``array`` (anything np.asarray accepts).

    Args:
        array: the values; lists are converted with np.asarray.
        dtype: a DataType to cast to (e.g. the signature's), or None to keep
            the array's own dtype.
        out: an empty TensorProto to fill (e.g. ``request.inputs["x"]``),
            which saves copying a large one into place.
        content: numbers as ``tensor_content`` (True) or in the typed field
            (``float_val`` ...), as TF Serving writes its replies by default.
    """
    array = np.asarray(array)
    dt = data_type(array.dtype) if dtype is None else dtype
    proto = tensor_pb2.TensorProto() if out is None else out
    proto.dtype = dt
    for d in array.shape:
        proto.tensor_shape.dim.add(size=int(d))
    if dt == DT.DT_STRING:
        proto.string_val.extend(_as_bytes(v) for v in array.reshape(-1))
        return proto
    if not content:
        _set_typed_values(proto, np.asarray(array, dtype=numpy_dtype(dt)))
        return proto
    target = numpy_dtype(dt).newbyteorder("<")
    proto.tensor_content = np.ascontiguousarray(array, dtype=target).tobytes()
    return proto


def _set_typed_values(proto, array: np.ndarray) -> None:
    field = _NUMPY[proto.dtype][1]
    flat = array.reshape(-1)
    if field == "half_val":  # float16 bit patterns stored in int32s
        values = flat.view(np.uint16).astype(np.int32)
    elif field in ("scomplex_val", "dcomplex_val"):  # (real, imag) pairs
        values = np.stack([flat.real, flat.imag], axis=-1).reshape(-1)
    else:
        values = flat
    getattr(proto, field).extend(values.tolist())


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TensorConversionError(f"string tensors hold str or bytes, got {type(value).__name__}")


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The numpy array a TensorProto holds (a fresh, writable array)."""
    if proto.tensor_shape.unknown_rank:
        raise TensorConversionError("tensor shape has unknown rank")
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise TensorConversionError(f"tensor shape {list(shape)} has a negative dim")
    size = 1
    for d in shape:  # Python ints: a product beyond int64 must not wrap around
        size *= d
    if size > INT64_MAX:
        raise TensorConversionError(f"tensor shape {list(shape)} has more than 2^63-1 elements")
    _check_numpy_can_hold(shape, 8 if proto.dtype == DT.DT_STRING else numpy_dtype(proto.dtype).itemsize)
    if proto.dtype == DT.DT_STRING:
        values = np.empty(len(proto.string_val), dtype=object)
        values[:] = list(proto.string_val)
        return _fill(values, size, shape, object)
    dtype = numpy_dtype(proto.dtype)
    if proto.tensor_content:
        content = proto.tensor_content
        if len(content) != size * dtype.itemsize:
            raise TensorConversionError(
                f"tensor_content has {len(content)} bytes, shape {list(shape)} of"
                f" {dtype_name(proto.dtype)} needs {size * dtype.itemsize}"
            )
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    return _fill(_typed_values(proto, dtype), size, shape, dtype)


def _check_numpy_can_hold(shape, itemsize: int) -> None:
    """numpy refuses a shape whose non-zero dims times the item size pass 2^63-1 bytes, even
    when another dim is 0 and the tensor is empty (TF would take that empty tensor; the model
    then has it to refuse). Said as INVALID_ARGUMENT, not a Python error."""
    span = itemsize
    for d in shape:
        span *= d or 1
    if span > INT64_MAX:
        raise TensorConversionError(
            f"tensor shape {list(shape)} cannot be held: its non-zero dims span more than 2^63-1 bytes"
        )


def _typed_values(proto, dtype: np.dtype) -> np.ndarray:
    field = _NUMPY[proto.dtype][1]
    values = getattr(proto, field)
    if field == "half_val":  # float16 bit patterns stored in int32s
        return np.asarray(values, dtype=np.uint16).view(np.float16)
    if field in ("scomplex_val", "dcomplex_val"):  # (real, imag) pairs
        pairs = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        out = np.empty(len(pairs), dtype)
        out.real, out.imag = pairs[:, 0], pairs[:, 1]  # not re + 1j*im: 1j*inf has a NaN real part
        return out
    return np.asarray(values, dtype=dtype)


def _fill(values: np.ndarray, size: int, shape, dtype) -> np.ndarray:
    """TF's rule for typed fields: fewer values than elements repeat the last one."""
    n = len(values)
    if n == size:
        return values.reshape(shape)
    if n > size:
        raise TensorConversionError(f"{n} values do not fit shape {list(shape)}")
    if n == 0:
        out = _empty(size, dtype, shape)
        out[:] = 0 if dtype is not object else b""
        return out.reshape(shape)
    out = _empty(size, values.dtype, shape)
    out[:n] = values
    out[n:] = values[-1]
    return out.reshape(shape)


def _empty(size: int, dtype, shape) -> np.ndarray:
    # A few typed values can stand for a huge tensor (the last one repeats): refuse one
    # beyond MAX_EXPANDED_BYTES instead of letting the OS hand out pages until it kills us.
    nbytes = size * np.dtype(dtype).itemsize
    if nbytes > MAX_EXPANDED_BYTES:
        raise TensorConversionError(
            f"tensor shape {list(shape)} needs {nbytes} bytes; at most {MAX_EXPANDED_BYTES} are"
            " expanded from repeated values")
    try:
        return np.empty(size, dtype=dtype)
    except (MemoryError, ValueError) as e:  # a small message asking for a huge tensor
        raise TensorConversionError(f"cannot allocate a tensor of shape {list(shape)}") from e
