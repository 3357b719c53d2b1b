"""Each bad request gets TF Serving's status code and message, and the server keeps serving.

Requests are built by hand (raw stubs, raw HTTP) so that the server, not the
client's own checks, is what answers.
"""

from __future__ import annotations

import http.client
import json

import grpc
import numpy as np
import pytest

from genimg_serving.protos import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from genimg_serving.tensors import to_tensor_proto

GOOD_X = np.array([[1.0]], np.float32)


@pytest.fixture(scope="module")
def stubs(half_plus_two_server):
    channel = grpc.insecure_channel(half_plus_two_server.target)
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def predict_request(name="default", inputs=None, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        elif key == "output_filter":
            request.output_filter.extend(value)
        else:
            setattr(request.model_spec, key, value)
    for alias, array in (inputs if inputs is not None else {"x": GOOD_X}).items():
        request.inputs[alias].CopyFrom(array if isinstance(array, type(request.inputs[alias]))
                                       else to_tensor_proto(array))
    return request


def truncated():
    proto = to_tensor_proto(np.ones((2, 1), np.float32))
    proto.tensor_content = proto.tensor_content[:-2]
    return proto


def metadata_request(name="default", fields=("signature_def",), spec=True):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    if spec:
        request.model_spec.name = name
    return request


def status_request(name="default", version=None, spec=True):
    request = get_model_status_pb2.GetModelStatusRequest()
    if spec:
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
    return request


GRPC_CASES = [
    ("unknown model", "Predict", predict_request("nope"), "NOT_FOUND",
     "Servable not found for request: Latest(nope)"),
    ("unknown version", "Predict", predict_request(version=999), "NOT_FOUND",
     "Servable not found for request: Specific(default, 999)"),
    ("unknown label", "Predict", predict_request(version_label="gold"), "INVALID_ARGUMENT",
     "Unrecognized servable version label: gold"),
    ("unknown signature", "Predict", predict_request(signature_name="nope"), "FAILED_PRECONDITION",
     'Serving signature key "nope" not found.'),
    ("wrong input name", "Predict", predict_request(inputs={"z": GOOD_X}), "INVALID_ARGUMENT",
     "input tensor alias not found in signature: z. Inputs expected to be in the set {x}."),
    ("extra input", "Predict", predict_request(inputs={"x": GOOD_X, "z": GOOD_X}), "INVALID_ARGUMENT",
     "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}."),
    ("no input", "Predict", predict_request(inputs={}), "INVALID_ARGUMENT",
     "Missing but required: {x}."),
    ("wrong dtype", "Predict", predict_request(inputs={"x": np.int32([[1]])}), "INVALID_ARGUMENT",
     "Expects input x to be float but int32 is provided"),
    # Shapes are the runtime's business, as in TF Serving (predict_util.cc checks none):
    # x of shape [2] or [1, 2] is answered (test_tfserving_conformance.py); a shape the
    # graph cannot take fails in TensorFlow, with its message.
    ("shape the graph cannot take", "Predict", predict_request(
        signature_name="classify_x_to_y", inputs={"inputs": np.array([[b"x"]], object)}),
     "INVALID_ARGUMENT", "got shape: [1,1]"),
    ("malformed tensor", "Predict", predict_request(inputs={"x": truncated()}), "INVALID_ARGUMENT",
     "tensor parsing error: x"),
    ("unknown output", "Predict", predict_request(output_filter=["q"]), "INVALID_ARGUMENT",
     "output tensor alias not found in signature: q Outputs expected to be in the set {y}."),
    ("duplicate output", "Predict", predict_request(output_filter=["y", "y"]), "INVALID_ARGUMENT",
     "duplicate output tensor alias: y"),
    ("metadata without field", "GetModelMetadata", metadata_request(fields=()), "INVALID_ARGUMENT",
     "GetModelMetadataRequest must specify at least one metadata_field"),
    ("metadata bad field", "GetModelMetadata", metadata_request(fields=("foo",)), "INVALID_ARGUMENT",
     "Metadata field foo is not supported"),
    ("metadata no spec", "GetModelMetadata", metadata_request(spec=False), "INVALID_ARGUMENT",
     "Missing ModelSpec"),
    ("metadata unknown model", "GetModelMetadata", metadata_request("nope"), "NOT_FOUND",
     "Servable not found for request: Latest(nope)"),
    ("status unknown model", "GetModelStatus", status_request("nope"), "NOT_FOUND",
     "Could not find any versions of model nope"),
    ("status unknown version", "GetModelStatus", status_request(version=999), "NOT_FOUND",
     "Could not find version 999 of model default"),
    ("status no spec", "GetModelStatus", status_request(spec=False), "INVALID_ARGUMENT",
     "Missing ModelSpec"),
    ("classify without model name", "Classify", classification_pb2.ClassificationRequest(),
     "INVALID_ARGUMENT", "ModelSpec has no name specified."),
    ("predict without model name", "Predict", predict_request(""), "INVALID_ARGUMENT",
     "ModelSpec has no name specified."),
]


@pytest.mark.parametrize("method, request_, code, message",
                         [c[1:] for c in GRPC_CASES], ids=[c[0] for c in GRPC_CASES])
def test_grpc_bad_request_gets_code_and_message_then_good_request_works(stubs, method, request_, code, message):
    predict_stub, model_stub = stubs
    stub = model_stub if method == "GetModelStatus" else predict_stub
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request_, timeout=30)
    assert info.value.code().name == code
    assert message in info.value.details()
    response = predict_stub.Predict(predict_request(), timeout=30)
    assert list(response.outputs["y"].float_val) == [2.5]  # answered: the server keeps serving


def rest(server, method, path, body=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload)


PREDICT = "/v1/models/default:predict"
REST_CASES = [
    ("unknown model", "POST", "/v1/models/nope:predict", {"instances": [[1.0]]}, None, 404,
     "Servable not found for request: Latest(nope)"),
    ("unknown version", "POST", "/v1/models/default/versions/7:predict", {"instances": [[1.0]]}, None,
     404, "Servable not found for request: Specific(default, 7)"),
    ("unknown label", "POST", "/v1/models/default/labels/gold:predict", {"instances": [[1.0]]}, None,
     400, "Unrecognized servable version label: gold"),
    ("empty body", "POST", PREDICT, None, b"", 400, "JSON Parse error: The document is empty"),
    ("bad json", "POST", PREDICT, None, b"instances = [1, 2]", 400, "JSON Parse error"),
    ("not an object", "POST", PREDICT, [1, 2], None, 400, "Is not object"),
    ("no instances or inputs", "POST", PREDICT, {"x": 1}, None, 400, "Missing 'inputs' or 'instances' key"),
    ("both keys", "POST", PREDICT, {"instances": [[1.0]], "inputs": [[1.0]]}, None, 400,
     "expecting only one of 'inputs' or 'instances' keys"),
    ("instances not a list", "POST", PREDICT, {"instances": 3}, None, 400, "to be an list/array"),
    ("empty instances", "POST", PREDICT, {"instances": []}, None, 400, "No values in 'instances' array"),
    ("wrong type", "POST", PREDICT, {"instances": [["x"]]}, None, 400,
     'JSON Value: "x" Type: String is not of expected type: float'),
    ("ragged", "POST", PREDICT, {"instances": [[1.0], [1.0, 2.0]]}, None, 400, "not rectangular"),
    ("missing named input", "POST", PREDICT, {"inputs": {"z": [[1.0]]}}, None, 400,
     "Missing named input: x in 'inputs' object."),
    ("signature not a string", "POST", PREDICT, {"signature_name": 100, "instances": [[1.0]]}, None,
     400, "'signature_name' key must be a string value."),
    ("unknown signature", "POST", PREDICT, {"signature_name": "nope", "instances": [[1.0]]}, None, 400,
     'Serving signature name: "nope" not found in signature def'),
    ("version overflow", "POST", f"/v1/models/default/versions/{2**64}:predict", {"instances": [[1.0]]},
     None, 400, "Failed to convert version"),
    ("regress without examples", "POST", "/v1/models/default:regress", {"examples": []}, None, 400,
     "'examples' value is an empty array"),
    ("malformed path", "GET", "/v1/foo", None, None, 400, "Malformed request: GET /v1/foo"),
    ("predict with GET", "GET", PREDICT, None, None, 400, "Malformed request"),
    ("metadata with POST", "POST", "/v1/models/default/metadata", {}, None, 400, "Malformed request"),
    ("no model name", "GET", "/v1/models", None, None, 400, "Missing model name in request."),
    ("status unknown model", "GET", "/v1/models/nope", None, None, 404,
     "Could not find any versions of model nope"),
    ("status unknown version", "GET", "/v1/models/default/versions/5", None, None, 404,
     "Could not find version 5 of model default"),
    ("outside the API", "GET", "/../../etc/passwd", None, None, 404, "Not found"),
]


@pytest.mark.parametrize("method, path, body, raw, status, message",
                         [c[1:] for c in REST_CASES], ids=[c[0] for c in REST_CASES])
def test_rest_bad_request_gets_http_code_and_message_then_good_request_works(
        half_plus_two_server, method, path, body, raw, status, message):
    got_status, doc = rest(half_plus_two_server, method, path, body, raw)
    assert (got_status, set(doc)) == (status, {"error"})
    assert message in doc["error"]
    assert rest(half_plus_two_server, "POST", PREDICT, {"instances": [[2.0]]}) == (200, {"predictions": [[3.0]]})


def test_rest_model_name_is_only_a_lookup_key(half_plus_two_server):
    """Path tricks in the name find no model; nothing is read from disk."""
    for name in ("..%2F..%2Fetc%2Fpasswd", "%2E%2E", "default%00"):
        status, doc = rest(half_plus_two_server, "GET", f"/v1/models/{name}")
        assert status == 404 and "Could not find any versions" in doc["error"]
