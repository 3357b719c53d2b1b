"""Property-based tests (hypothesis) of ndarray <-> TensorProto across dtypes and shapes.

Three oracles: the round trip itself (through the wire bytes), the typed
``*_val`` fields written the way TF Serving writes them, and TensorFlow's own
``make_tensor_proto`` / ``make_ndarray``. Shapes include scalars and zero-size
dims; floats include NaN, +-Inf, -0.0 and subnormals.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genimg_serving.protos import tensor_pb2, types_pb2
from genimg_serving.tensors import to_ndarray, to_tensor_proto

# dtype -> (DataType, the typed field TF Serving fills), from tensorflow/core/framework/tensor.proto
TYPED = {
    np.float16: (types_pb2.DT_HALF, "half_val"),
    np.float32: (types_pb2.DT_FLOAT, "float_val"),
    np.float64: (types_pb2.DT_DOUBLE, "double_val"),
    np.int8: (types_pb2.DT_INT8, "int_val"),
    np.int16: (types_pb2.DT_INT16, "int_val"),
    np.int32: (types_pb2.DT_INT32, "int_val"),
    np.int64: (types_pb2.DT_INT64, "int64_val"),
    np.uint8: (types_pb2.DT_UINT8, "int_val"),
    np.uint16: (types_pb2.DT_UINT16, "int_val"),
    np.uint32: (types_pb2.DT_UINT32, "uint32_val"),
    np.uint64: (types_pb2.DT_UINT64, "uint64_val"),
    np.bool_: (types_pb2.DT_BOOL, "bool_val"),
    np.complex64: (types_pb2.DT_COMPLEX64, "scomplex_val"),
    np.complex128: (types_pb2.DT_COMPLEX128, "dcomplex_val"),
}
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
NUMERIC = st.sampled_from(list(TYPED)).flatmap(lambda dt: hnp.arrays(dt, SHAPES))
STRINGS = st.one_of(
    hnp.arrays(object, SHAPES, elements=st.binary(max_size=8)),
    hnp.arrays(object, SHAPES, elements=st.text(max_size=6)),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def over_the_wire(proto) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto.FromString(proto.SerializeToString())


def assert_bitwise(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype, shape and bytes: NaN payloads and -0.0 survive too."""
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


def assert_values(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype, shape and values (NaN equals NaN)."""
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    np.testing.assert_array_equal(got, want)


def typed_proto(flat: np.ndarray, shape, dtype) -> tensor_pb2.TensorProto:
    """A proto carrying ``flat`` in the typed field, as TF Serving answers."""
    dt, field = TYPED[dtype]
    proto = tensor_pb2.TensorProto(dtype=dt)
    for d in shape:
        proto.tensor_shape.dim.add(size=d)
    if dtype is np.float16:
        values = flat.view(np.uint16).astype(np.int64).tolist()  # bit patterns in int32s
    elif dtype in (np.complex64, np.complex128):
        values = np.stack([flat.real, flat.imag], axis=-1).reshape(-1).tolist()  # (re, im) pairs
    else:
        values = flat.tolist()
    getattr(proto, field).extend(values)
    return proto


@FAST
@given(NUMERIC)
def test_numeric_round_trip_through_tensor_content_is_bitwise(array):
    proto = to_tensor_proto(array)
    assert proto.dtype == TYPED[array.dtype.type][0]
    assert len(proto.tensor_content) == array.nbytes
    assert_bitwise(to_ndarray(over_the_wire(proto)), array)


@FAST
@given(NUMERIC)
def test_typed_fields_read_back_as_the_array(array):
    proto = over_the_wire(typed_proto(array.reshape(-1), array.shape, array.dtype.type))
    assert_values(to_ndarray(proto), array)


@FAST
@given(NUMERIC, st.data())
def test_short_typed_fields_repeat_the_last_value(array, data):
    """TF's rule: n < size values fill the rest with the last one; none at all means zeros."""
    flat = array.reshape(-1)
    n = data.draw(st.integers(0, flat.size), label="values sent")
    proto = typed_proto(flat[:n], array.shape, array.dtype.type)
    filler = flat[n - 1] if n else np.zeros((), array.dtype)
    want = np.concatenate([flat[:n], np.full(flat.size - n, filler, array.dtype)]).reshape(array.shape)
    assert_values(to_ndarray(proto), want)


@FAST
@given(STRINGS)
def test_strings_round_trip_as_utf8_bytes(array):
    back = to_ndarray(over_the_wire(to_tensor_proto(array)))
    want = [v.encode("utf-8") if isinstance(v, str) else v for v in array.reshape(-1)]
    assert back.dtype == object and back.shape == array.shape
    assert back.reshape(-1).tolist() == want


@FAST
@given(NUMERIC)
def test_filling_a_request_in_place_equals_a_fresh_proto(array):
    from genimg_serving.protos import predict_pb2

    request = predict_pb2.PredictRequest()
    to_tensor_proto(array, out=request.inputs["x"])
    assert request.inputs["x"] == to_tensor_proto(array)


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


@FAST
@given(array=st.one_of(NUMERIC, STRINGS))
def test_tensorflow_reads_our_protos_and_we_read_its(tf, array):
    """TensorFlow as the oracle: make_ndarray(ours) and to_ndarray(make_tensor_proto(...)).

    make_tensor_proto itself uses tensor_content for most dtypes and the typed
    fields for bool, uint16 and complex, so both encodings are compared.
    """
    if array.dtype == object:
        array = np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])(array)
        assert tf.make_ndarray(to_tensor_proto(array)).tolist() == array.tolist()
        assert to_ndarray(tf.make_tensor_proto(array)).tolist() == array.tolist()
        return
    assert_values(tf.make_ndarray(to_tensor_proto(array)), array)
    assert_values(to_ndarray(tf.make_tensor_proto(array)), array)
