"""ndarray <-> TensorProto for every dtype, both encodings, and the error cases."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genimg_serving.protos import tensor_pb2, types_pb2
from genimg_serving.tensors import TensorConversionError, to_ndarray, to_tensor_proto

ARRAYS = [
    np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 7,
    np.array([1.5, -2.25], dtype=np.float64),
    np.array([[1, -2]], dtype=np.int32),
    np.array([0, 255], dtype=np.uint8),
    np.array([-3], dtype=np.int8),
    np.array([-30000], dtype=np.int16),
    np.array([65000], dtype=np.uint16),
    np.array([2**40], dtype=np.int64),
    np.array([2**31 + 5], dtype=np.uint32),
    np.array([2**63 + 1], dtype=np.uint64),
    np.array([True, False]),
    np.array([0.5, -1.0], dtype=np.float16),
    np.array([1 + 2j], dtype=np.complex64),
    np.array([3 - 4j], dtype=np.complex128),
    np.float32(7.0),  # scalar
    np.zeros((0, 3), np.float32),  # empty batch
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(np.shape(a))}")
def test_round_trip_keeps_dtype_shape_and_values(array):
    back = to_ndarray(to_tensor_proto(array))
    assert back.dtype == array.dtype and back.shape == np.shape(array)
    np.testing.assert_array_equal(back, array)
    back[...] = 0  # the result is a fresh, writable array


def test_strings_round_trip_as_bytes():
    proto = to_tensor_proto(np.array([["a", "é"], ["b", ""]]))
    assert proto.dtype == types_pb2.DT_STRING
    back = to_ndarray(proto)
    assert back.shape == (2, 2) and back[0, 1] == "é".encode()


def test_typed_fields_as_tf_serving_sends_them():
    """TF Serving answers with float_val etc.; a short list repeats its last value."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=2)
    proto.float_val.extend([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(to_ndarray(proto), [[1, 2], [3, 3]])
    half = tensor_pb2.TensorProto(dtype=types_pb2.DT_HALF)
    half.tensor_shape.dim.add(size=2)
    half.half_val.extend(np.float16([1.5, -2]).view(np.uint16).tolist())
    np.testing.assert_array_equal(to_ndarray(half), np.float16([1.5, -2]))


def test_cast_to_a_signature_dtype():
    proto = to_tensor_proto([[1, 2]], types_pb2.DT_FLOAT)
    assert to_ndarray(proto).dtype == np.float32


@pytest.mark.parametrize("break_it, message", [
    (lambda p: setattr(p, "tensor_content", p.tensor_content[:-1]), "bytes"),
    (lambda p: p.tensor_shape.dim.add(size=-1), "negative"),
    (lambda p: setattr(p, "dtype", types_pb2.DT_RESOURCE), "not supported"),
])
def test_malformed_protos_raise_with_the_reason(break_it, message):
    proto = to_tensor_proto(np.ones((2, 2), np.float32))
    break_it(proto)
    with pytest.raises(TensorConversionError, match=message):
        to_ndarray(proto)


def test_too_many_typed_values_is_an_error():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    proto.tensor_shape.dim.add(size=1)
    proto.int_val.extend([1, 2])
    with pytest.raises(TensorConversionError, match="do not fit"):
        to_ndarray(proto)


def test_object_arrays_of_non_strings_are_refused():
    with pytest.raises(TensorConversionError, match="str or bytes"):
        to_tensor_proto(np.array([1, "a"], dtype=object))


def test_client_imports_without_tensorflow_and_tensorflow_still_imports_after():
    """The client needs the protos only; TF must still work when imported later."""
    code = (
        "import sys; import genimg_serving.client as c; import numpy as np;"
        "assert 'tensorflow' not in sys.modules, 'client imported TensorFlow';"
        "import tensorflow as tf; from tensorflow.core.framework import tensor_pb2;"
        "from genimg_serving.protos import tensor_pb2 as mine; assert mine is tensor_pb2;"
        "p = tf.make_tensor_proto(np.float32([1, 2])); from genimg_serving.tensors import to_ndarray;"
        "assert to_ndarray(p).tolist() == [1.0, 2.0]; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_an_empty_tensor_numpy_cannot_shape_is_refused_in_one_line():
    """Found by the fuzz test: dims [0, 5682, 724028, 560496809] hold no element, but numpy
    refuses the shape (its non-zero dims span more than 2^63-1 bytes): a clear refusal, not a
    ValueError reaching the client as INTERNAL."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for d in (0, 5682, 724028, 560496809):
        proto.tensor_shape.dim.add(size=d)
    with pytest.raises(TensorConversionError, match="cannot be held"):
        to_ndarray(proto)
    proto.tensor_shape.dim[3].size = 5
    assert to_ndarray(proto).shape == (0, 5682, 724028, 5)
