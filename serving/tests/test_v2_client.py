"""The v2 (KServe Open Inference Protocol) side of the client, without a server.

What Triton sends is parsed here from the protocol's own message forms (model metadata
as the HTTP JSON and as tritonclient's JSON of the gRPC message, whose int64 dims are
strings; errors as tritonclient raises them). Calls against a real Triton are in
tests/test_triton_live.py (slow).
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from genimg_serving import (
    Client,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from genimg_serving.client import _v2_scheme
from genimg_serving.v2 import NUMPY_TO_V2, V2_TYPES, V2Transport, _error, _tensor

HTTP_METADATA = {"name": "srgan", "versions": ["1", "3"], "platform": "onnxruntime_onnx",
                 "inputs": [{"name": "lr", "datatype": "FP32", "shape": [-1, -1, -1, 3]}],
                 "outputs": [{"name": "hr", "datatype": "FP32", "shape": [-1, -1, -1, 3]}]}
GRPC_METADATA_JSON = {"name": "cgan", "versions": ["2"], "platform": "onnxruntime_onnx",
                      "inputs": [{"name": "z", "datatype": "FP32", "shape": ["-1", "64"]},
                                 {"name": "label", "datatype": "INT64", "shape": ["-1"]}],
                      "outputs": [{"name": "image", "datatype": "FP32", "shape": ["-1", "28", "28", "1"]}]}


def test_metadata_tensors_from_both_wire_forms():
    lr = _tensor(HTTP_METADATA["inputs"][0])
    assert (lr.alias, lr.dtype, lr.shape, lr.is_image) == ("lr", "float32", (None, None, None, 3), True)
    z, label = (_tensor(t) for t in GRPC_METADATA_JSON["inputs"])
    assert (z.dtype, z.shape) == ("float32", (None, 64))
    assert (label.dtype, label.shape) == ("int64", (None,))
    assert _tensor(GRPC_METADATA_JSON["outputs"][0]).shape == (None, 28, 28, 1)


class _FakeClient:
    """Stands in for tritonclient's InferenceServerClient: returns one metadata document."""

    def __init__(self, doc):
        self.doc = doc

    def get_model_metadata(self, model, version, headers=None, **_):
        return self.doc


def _transport(doc, http=True) -> V2Transport:
    transport = V2Transport.__new__(V2Transport)
    transport.http, transport.target, transport._headers = http, "test", None
    transport._client = _FakeClient(doc)
    return transport


def test_metadata_is_one_serving_default_signature_at_the_newest_version():
    meta = _transport(HTTP_METADATA).metadata("srgan", version=None, label=None)
    assert (meta.name, meta.version, list(meta.signatures)) == ("srgan", 3, ["serving_default"])
    assert list(meta.signature().inputs) == ["lr"] and list(meta.signature().outputs) == ["hr"]
    assert _transport(GRPC_METADATA_JSON, http=False).metadata("cgan", version=2, label=None).version == 2


def test_errors_keep_the_servers_message_and_map_to_the_same_classes():
    cases = [
        (InferenceServerException("Request for unknown model: 'x' is not found", status="StatusCode.NOT_FOUND"),
         NotFoundError),
        (InferenceServerException("unexpected shape", status="StatusCode.INVALID_ARGUMENT"), InvalidArgumentError),
        (InferenceServerException("failed to connect", status="StatusCode.UNAVAILABLE"), UnavailableError),
        (InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED"),
         DeadlineExceededError),
        (InferenceServerException("Request for unknown model: 'x' is not found", status="400"), NotFoundError),
        (InferenceServerException("unexpected datatype", status="400"), InvalidArgumentError),
        (InferenceServerException("model not found", status="404"), NotFoundError),
        (InferenceServerException("Request for unknown model: 'x' is not found"), NotFoundError),
        (InferenceServerException("timed out"), DeadlineExceededError),
    ]
    for exception, cls in cases:
        error = _error(exception)
        assert type(error) is cls, (exception, error)
        assert exception.message() in error.message
    assert _error(InferenceServerException("boom", status="StatusCode.INTERNAL")).code == grpc.StatusCode.INTERNAL


def test_schemes_and_protocol_choice():
    assert _v2_scheme("v2://triton:8001", "v1") == ("grpc://triton:8001", "v2")
    assert _v2_scheme("v2+http://triton:8000", "v1") == ("http://triton:8000", "v2")
    assert _v2_scheme("v2+https://t", "v1") == ("https://t", "v2")
    assert _v2_scheme("localhost:8500", "v1") == ("localhost:8500", "v1")
    with pytest.raises(InvalidArgumentError, match="protocol must be one of v1, v2"):
        Client("localhost:8001", protocol="v3")
    with Client("v2+http://127.0.0.1:9", protocol="v1") as c:
        assert c.protocol == "v2" and isinstance(c.transport, V2Transport) and c.transport.http
    with Client("grpc://127.0.0.1:9", protocol="v2") as c:
        assert not c.transport.http


def test_a_refused_connection_is_unavailable_and_retried_to_the_deadline():
    with Client("http://127.0.0.1:9", protocol="v2", timeout=1.0, retries=1) as c:
        with pytest.raises(UnavailableError):
            c.metadata("srgan")


CALLS = {"metadata": lambda t: t.metadata("m", version=None, label=None, timeout=1.0),
         "status": lambda t: t.status("m", version=None, label=None, timeout=1.0),
         "predict": lambda t: t.predict("m", {"x": np.zeros(1, np.float32)}, version=None, label=None,
                                        signature="serving_default", output_filter=None, timeout=1.0)}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_silent_grpc_server_is_given_up_at_the_deadline(call):
    """A peer that accepts and never answers (a wedged server) must not hold a gRPC call for ever."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        transport = V2Transport(f"grpc://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises((DeadlineExceededError, UnavailableError)):
            CALLS[call](transport)
        assert time.monotonic() - start < 8  # without the deadline: gRPC's own 20 s connect timeout
        transport.close()


def test_requests_the_protocol_cannot_carry_are_refused_before_sending():
    transport = _transport(HTTP_METADATA)
    with pytest.raises(InvalidArgumentError, match="no version labels"):
        transport.metadata("srgan", version=None, label="stable")
    with pytest.raises(InvalidArgumentError, match="one signature"):
        transport.predict("srgan", {}, version=None, label=None, signature="encode", output_filter=None, timeout=1)
    from tritonclient import http as v2http

    transport._module = v2http
    with pytest.raises(InvalidArgumentError, match="no type for complex64"):
        transport._input("x", np.zeros(2, np.complex64))


def test_type_tables_are_inverse():
    assert all(V2_TYPES[NUMPY_TO_V2[name]] == name for name in NUMPY_TO_V2)
    assert NUMPY_TO_V2["float32"] == "FP32" and NUMPY_TO_V2["string"] == "BYTES"


def test_rest_metadata_parses_without_tf_protos_as_the_proto_parser_does():
    """signatures.from_json reads the JSON itself (the base install has no TF protos):
    the same TensorInfos as parsing the SignatureDefMap proto, for every dtype and shape form."""
    from google.protobuf import json_format

    from genimg_serving import signatures
    from genimg_serving.protos import get_model_metadata_pb2, types_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    sig = sig_map.signature_def["serving_default"]
    sig.method_name = "tensorflow/serving/predict"
    for i, (name, number) in enumerate(types_pb2.DataType.items()):
        if name == "DT_INVALID" or name.endswith("_REF") or number > 23:
            continue
        info = sig.inputs[f"in_{name.lower()}"]
        info.name, info.dtype = f"{name}:0", number
        if i % 3 == 0:
            info.tensor_shape.unknown_rank = True
        else:
            info.tensor_shape.dim.add(size=-1)
            info.tensor_shape.dim.add(size=i)
    sig.outputs["y"].dtype = types_pb2.DT_FLOAT
    doc = {"model_spec": {"name": "m", "version": "7"},
           "metadata": {"signature_def": json_format.MessageToDict(sig_map, preserving_proto_field_name=True)}}
    parsed = signatures.from_json(doc)
    assert parsed.version == 7
    assert parsed.signatures == signatures.signature_infos(sig_map)
