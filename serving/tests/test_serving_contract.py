"""The contract with the real TF Serving, checked on TF Serving's own test models.

half_plus_two must answer y = 0.5 x + 2 over gRPC and REST, its metadata must
equal what TF Serving returns (its half_plus_two_model_metadata.json, written
out below) field for field, and the two-version model must serve 124 as latest
and 123 on request. Every test runs on the twins the conftest builds, and on
TF Serving's own copies too when they are present (the ``testdata`` fixture).
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from google.protobuf import json_format
from harness.serving import start_server

from genimg_serving.client import Client
from genimg_serving.configs import parse_model_config
from genimg_serving.protos import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

X = np.array([[1.0], [2.0], [5.0]], np.float32)


# What TF Serving answers for GET /v1/models/<name>/metadata on half_plus_two
# (tensorflow_serving/servables/tensorflow/testdata/half_plus_two_model_metadata.json).
def _tensor(name, dtype="DT_FLOAT", dims=(-1, 1)):
    shape = ({"dim": [], "unknown_rank": True} if dims is None else
             {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False})
    return {"dtype": dtype, "tensor_shape": shape, "name": name}


def _signature(method, inputs, outputs):
    return {"inputs": inputs, "outputs": outputs, "method_name": f"tensorflow/serving/{method}",
            "defaults": {}}


EXAMPLES = _tensor("tf_example:0", "DT_STRING", None)
HALF_PLUS_TWO_SIGNATURES = {
    "serving_default": _signature("predict", {"x": _tensor("x:0")}, {"y": _tensor("y:0")}),
    "classify_x_to_y": _signature("classify", {"inputs": EXAMPLES}, {"scores": _tensor("y:0")}),
    "regress_x_to_y": _signature("regress", {"inputs": EXAMPLES}, {"outputs": _tensor("y:0")}),
    "regress_x_to_y2": _signature("regress", {"inputs": EXAMPLES}, {"outputs": _tensor("y2:0")}),
    "regress_x2_to_y3": _signature("regress", {"inputs": _tensor("x2:0")}, {"outputs": _tensor("y3:0")}),
}


# saved_model_half_plus_two_2_versions_metadata.json: the same plus one signature.
TWO_VERSIONS_SIGNATURES = {**HALF_PLUS_TWO_SIGNATURES, "classify_x2_to_y3": _signature(
    "classify", {"inputs": _tensor("x2:0")}, {"scores": _tensor("y3:0")})}


def expected_metadata(name: str, version: int) -> dict:
    signatures = TWO_VERSIONS_SIGNATURES if name.endswith("2_versions") else HALF_PLUS_TWO_SIGNATURES
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": signatures}}}


def test_written_expectation_is_tf_servings_own_file(testdata):
    """Where TF Serving's copies are present, its JSON files say what the table above says."""
    for file, name in (("half_plus_two_model_metadata.json", "default"),
                       ("saved_model_half_plus_two_2_versions_metadata.json",
                        "saved_model_half_plus_two_2_versions")):
        if (testdata / file).is_file():
            assert json.loads((testdata / file).read_text()) == expected_metadata(name, 123)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_half_plus_two_answers_half_x_plus_two(half_plus_two_server, transport):
    s = half_plus_two_server
    with Client(s.target if transport == "grpc" else s.rest_url) as client:
        y = client.predict("default", {"x": X})["y"]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, 0.5 * X + 2)


def test_rest_row_and_columnar_formats(half_plus_two_server):
    url = f"{half_plus_two_server.rest_url}/v1/models/default:predict"
    assert _post(url, {"instances": [[1.0], [2.0]]}) == {"predictions": [[2.5], [3.0]]}
    assert _post(url, {"inputs": {"x": [[1.0], [2.0]]}}) == {"outputs": [[2.5], [3.0]]}
    assert _post(url, {"signature_name": "serving_default", "inputs": [[3.0]]}) == {"outputs": [[3.5]]}
    assert _post(url, {"instances": [{"x": [4.0]}]}) == {"predictions": [[4.0]]}


def test_grpc_response_names_model_version_and_signature(half_plus_two_server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        Client(half_plus_two_server.target).transport.channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(json_format.ParseDict(
        {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": 1}, {"size": 1}]}, "float_val": [4.0]},
        request.inputs["x"]))
    response = stub.Predict(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == ("default", 123, "serving_default")


def test_metadata_equals_tf_serving_field_for_field_over_rest(half_plus_two_server):
    expected = expected_metadata("default", 123)
    got = _get(f"{half_plus_two_server.rest_url}/v1/models/default/metadata")
    assert got == expected


def test_metadata_equals_tf_serving_field_for_field_over_grpc(half_plus_two_server):
    expected = expected_metadata("default", 123)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        Client(half_plus_two_server.target).transport.channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "default"
    response = stub.GetModelMetadata(request, timeout=30)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sig_map)
    expected_map = json_format.ParseDict(expected["metadata"]["signature_def"],
                                         get_model_metadata_pb2.SignatureDefMap())
    assert sig_map == expected_map
    assert (response.model_spec.name, response.model_spec.version.value) == ("default", 123)


def test_client_metadata_parses_names_dtypes_shapes(half_plus_two_server):
    with Client(half_plus_two_server.target) as client:
        md = client.metadata("default")
    assert (md.name, md.version) == ("default", 123)
    x = md.signature().inputs["x"]
    assert (x.dtype, x.shape, x.tensor_name) == ("float32", (None, 1), "x:0")
    assert md.signatures["classify_x_to_y"].inputs["inputs"].shape is None  # unknown rank
    assert md.signatures["regress_x_to_y"].method_name == "tensorflow/serving/regress"


def test_status_as_tf_serving_reports_it(half_plus_two_server):
    expected = {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    base = f"{half_plus_two_server.rest_url}/v1/models/default"
    assert _get(base) == expected
    assert _get(f"{base}/versions/123") == expected
    with Client(half_plus_two_server.target) as client:
        (status,) = client.status("default")
    assert (status.version, status.state, status.error_code) == (123, "AVAILABLE", "OK")


TWO_VERSION_CONFIG = """
model_config_list {{
  config {{
    name: "saved_model_half_plus_two_2_versions"
    base_path: "{}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 123 }}
    version_labels {{ key: "canary" value: 124 }}
  }}
}}
"""


@pytest.fixture(scope="module")
def two_versions(testdata):
    config = TWO_VERSION_CONFIG.format(testdata / "saved_model_half_plus_two_2_versions")
    server = start_server(parse_model_config(config))
    yield server
    server.stop()


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_two_versions_latest_is_124_and_123_on_request(two_versions, transport):
    name = "saved_model_half_plus_two_2_versions"
    target = two_versions.target if transport == "grpc" else two_versions.rest_url
    with Client(target) as client:
        assert client.metadata(name).version == 124
        assert client.metadata(name, version=123).version == 123
        assert client.metadata(name, label="stable").version == 123
        np.testing.assert_array_equal(client.predict(name, {"x": X}, version=123)["y"], 0.5 * X + 2)
        if transport == "grpc":
            assert client.predict_versioned(name, {"x": X})[1] == 124
            assert client.predict_versioned(name, {"x": X}, version=123)[1] == 123
            assert client.predict_versioned(name, {"x": X}, label="canary")[1] == 124
        assert [s.version for s in client.status(name)] == [124, 123]


def test_two_versions_metadata_of_123_equals_tf_serving(two_versions):
    expected = expected_metadata("saved_model_half_plus_two_2_versions", 123)
    got = _get(f"{two_versions.rest_url}/v1/models/saved_model_half_plus_two_2_versions/versions/123/metadata")
    assert got == expected


def test_latest_policy_serves_only_the_highest_version(testdata):
    from genimg_serving.configs import single_model

    server = start_server(single_model("m", testdata / "saved_model_half_plus_two_2_versions"), rest_port=None)
    try:
        with Client(server.target) as client:
            assert [s.version for s in client.status("m")] == [124]
            assert client.predict_versioned("m", {"x": X})[1] == 124
    finally:
        server.stop()
