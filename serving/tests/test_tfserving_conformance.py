"""TF Serving's own test requests and expected answers, as a table, over REST and gRPC.

Every row comes from TF Serving's tests (model_servers/tensorflow_model_server_test.py,
model_servers/http_rest_api_handler_test.cc, util/json_tensor_test.cc) or from the
behaviour of its sources (get_model_status_impl.cc, classifier.cc, regressor.cc,
multi_inference.cc, json_tensor.cc), which the file named in each row's comment shows.
The models are the twins the conftest builds (and TF Serving's copies when present).
"""

from __future__ import annotations

import http.client
import json

import grpc
import numpy as np
import pytest
from harness.serving import start_server

from genimg_serving.client import Client
from genimg_serving.configs import parse_model_config, single_model
from genimg_serving.protos import (
    classification_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    types_pb2,
)

TWO = "saved_model_half_plus_two_2_versions"
STATUS_123 = {"model_version_status": [
    {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def rest(server, method, path, body=None, raw=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, (json.loads(payload) if payload else None)


# ---- REST on half_plus_two served as "default" (tensorflow_model_server_test.py) ----

DEFAULT_OK = [
    ("testPredictREST", "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]},
     {"predictions": [3.0, 3.5, 4.0]}),
    ("testPredictColumnarREST", "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]},
     {"outputs": [3.0, 3.5, 4.0]}),
    ("testClassifyREST", "/v1/models/default:classify",
     {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}, {"results": [[["", 3.0]]]}),
    ("testRegressREST", "/v1/models/default:regress",
     {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}, {"results": [3.0]}),
    # json_tensor.cc: a context is merged into every example.
    ("regress with context", "/v1/models/default:regress",
     {"signature_name": "regress_x_to_y", "context": {"x": 8.0}, "examples": [{}, {"x": 4.0}]},
     {"results": [6.0, 4.0]}),
    # Trailing text after the JSON object is ignored (the probe against TF Serving, issue 17).
    ("trailing text", "/v1/models/default:predict", b'{"instances": [2.0]} trailing', {"predictions": [3.0]}),
    # json_tensor.cc WriteDecimal: a float is written with 6 digits when they read back as the
    # same float: 0.5 * 0.2f + 2 is 2.1, not the float64 expansion 2.0999999046325684.
    ("float written as its decimal", "/v1/models/default:predict", {"instances": [0.2]}, {"predictions": [2.1]}),
]


@pytest.mark.parametrize("path, body, expected", [c[1:] for c in DEFAULT_OK], ids=[c[0] for c in DEFAULT_OK])
def test_rest_requests_on_default(half_plus_two_server, path, body, expected):
    raw = body if isinstance(body, bytes) else None
    assert rest(half_plus_two_server, "POST", path, None if raw else body, raw) == (200, expected)


def test_get_status_rest(half_plus_two_server):
    assert rest(half_plus_two_server, "GET", "/v1/models/default") == (200, STATUS_123)


# ---- REST on the two-version model, as http_rest_api_handler_test.cc serves it ----

TWO_CONFIG = """
model_config_list {{ config {{
  name: "{name}" base_path: "{base}" model_platform: "tensorflow"
  model_version_policy {{ specific {{ versions: 123 }} }}
  version_labels {{ key: "Version_Label" value: 123 }}
}} }}
"""


@pytest.fixture(scope="module")
def handler_server(testdata):
    server = start_server(parse_model_config(TWO_CONFIG.format(name=TWO, base=testdata / TWO)))
    yield server
    server.stop()


HANDLER_OK = [
    ("Predict", f"/v1/models/{TWO}:predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]},
     {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    ("Predict version", f"/v1/models/{TWO}/versions/123:predict", {"instances": [1.0, 2.0]},
     {"predictions": [2.5, 3.0]}),
    ("Predict label", f"/v1/models/{TWO}/labels/Version_Label:predict", {"instances": [1.0, 2.0]},
     {"predictions": [2.5, 3.0]}),
    ("Predict signature", f"/v1/models/{TWO}/versions/123:predict",
     {"signature_name": "serving_default", "instances": [3.0, 4.0]}, {"predictions": [3.5, 4.0]}),
    ("Predict columnar", f"/v1/models/{TWO}/versions/123:predict",
     {"signature_name": "serving_default", "inputs": [3.0, 4.0]}, {"outputs": [3.5, 4.0]}),
    ("Regress", f"/v1/models/{TWO}:regress",
     {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    ("Regress version", f"/v1/models/{TWO}/versions/123:regress",
     {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    ("Regress label", f"/v1/models/{TWO}/labels/Version_Label:regress",
     {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    ("Classify", f"/v1/models/{TWO}:classify",
     {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}, {"results": [[["", 12]]]}),
    ("Classify label", f"/v1/models/{TWO}/labels/Version_Label:classify",
     {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]}, {"results": [[["", 7]]]}),
]


@pytest.mark.parametrize("path, body, expected", [c[1:] for c in HANDLER_OK], ids=[c[0] for c in HANDLER_OK])
def test_http_rest_api_handler_requests(handler_server, path, body, expected):
    assert rest(handler_server, "POST", path, body) == (200, expected)


@pytest.mark.parametrize("path", [f"/v1/models/{TWO}", f"/v1/models/{TWO}/versions/123",
                                  f"/v1/models/{TWO}/labels/Version_Label"])
def test_http_rest_api_handler_get_status(handler_server, path):
    assert rest(handler_server, "GET", path) == (200, STATUS_123)


U64 = 2**64 - 1
HANDLER_ERRORS = [  # (method, path, body, HTTP status, message) - UnsupportedApiCalls and friends
    ("GET", "/v1/foo", "", 400, "Malformed request"),
    ("POST", "/v1/foo", "", 400, "Malformed request"),
    ("GET", "/v1/models", "", 400, "Missing model name"),
    ("GET", "/v1/models/debug/model_name", "", 400, "Malformed request"),
    ("POST", "/v1/models", "", 400, "Malformed request"),
    ("GET", "/v1/models/foo:predict", "", 400, "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "", 400, "Malformed request"),
    ("POST", f"/v1/models/foo/versions/{U64}:regress", "", 400, "Failed to convert version"),
    ("POST", "/v1/models/foo/metadata", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress", "", 400, "Malformed request"),
    ("POST", "/v1/models/foo/versions/some_label:regress", "", 400, "Malformed request"),
    # PredictModelNameVersionErrors
    ("POST", "/v1/models/foo:predict", '{ "instances": [1] }', 404, "Servable not found"),
    ("POST", "/v1/models/foo/versions/50:predict", '{ "instances": [1] }', 404, "Servable not found"),
    ("POST", f"/v1/models/{TWO}99:predict", '{ "instances": [1] }', 404, "Servable not found"),
    # PredictRequestErrors
    ("POST", f"/v1/models/{TWO}:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", f"/v1/models/{TWO}:predict", "instances = [1, 2]", 400, "JSON Parse error: Invalid value"),
    ("POST", f"/v1/models/{TWO}:predict", '{ "instances": ["x", "y"] }', 400, "not of expected type: float"),
    ("POST", f"/v1/models/{TWO}/labels/Version_Nonexistent:predict", '{ "instances": ["x", "y"] }', 400,
     "Unrecognized servable version label"),
    ("POST", f"/v1/models/{TWO}:predict", '{ "signature_name": 100 }', 400,
     "'signature_name' key must be a string value."),
    # The verb is case-sensitive in TF Serving's path regex.
    ("POST", f"/v1/models/{TWO}:PREDICT", '{ "instances": [1.0] }', 400, "Malformed request"),
    # Methods other than GET and POST get a JSON error, not an HTML page.
    ("PUT", f"/v1/models/{TWO}:predict", '{ "instances": [1.0] }', 400, "Malformed request"),
    ("DELETE", f"/v1/models/{TWO}", "", 400, "Malformed request"),
    ("TRACE", f"/v1/models/{TWO}", "", 405, "Method Not Allowed"),  # JSON too, no HTML page
]


@pytest.mark.parametrize("method, path, body, status, message", HANDLER_ERRORS,
                         ids=[f"{c[0]} {c[1]} {c[2][:20]}" for c in HANDLER_ERRORS])
def test_http_rest_api_handler_errors(handler_server, method, path, body, status, message):
    got, doc = rest(handler_server, method, path, raw=body.encode())
    assert (got, set(doc)) == (status, {"error"})
    assert message in doc["error"]


def test_cors_preflight_with_origin_is_answered(handler_server):
    conn = http.client.HTTPConnection("127.0.0.1", handler_server.rest_port, timeout=30)
    conn.request("OPTIONS", f"/v1/models/{TWO}:predict", headers={"Origin": "http://example.com"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200


def test_deeply_nested_json_gets_a_400_reply(handler_server):
    body = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, doc = rest(handler_server, "POST", f"/v1/models/{TWO}:predict", raw=body)
    assert status == 400 and "JSON Parse error" in doc["error"]
    assert rest(handler_server, "POST", f"/v1/models/{TWO}:predict", {"instances": [2.0]}) == (
        200, {"predictions": [3.0]})


# ---- gRPC (tensorflow_model_server_test.py) ----

@pytest.fixture(scope="module")
def stub(half_plus_two_server):
    channel = grpc.insecure_channel(half_plus_two_server.target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def verify_predict_request(stub, expected_output, expected_version, model_name="default",
                           specify_output=True, batch_input=False, signature_name="serving_default"):
    """TF Serving's VerifyPredictRequest: x of shape [1] (or [1, 1]) in float_val, y read from float_val."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    if batch_input:
        request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    result = stub.Predict(request, timeout=30)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [expected_output]
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        model_name, signature_name, expected_version)


@pytest.mark.parametrize("specify_output", [True, False])
@pytest.mark.parametrize("batch_input", [False, True])
def test_predict_saved_model(stub, specify_output, batch_input):
    verify_predict_request(stub, 3.0, 123, specify_output=specify_output, batch_input=batch_input)


def _examples(request, **features):
    example = request.input.example_list.examples.add()
    for key, value in features.items():
        example.features.feature[key].float_list.value.extend([value])


def test_classify(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    _examples(request, x=2.0)
    result = stub.Classify(request, timeout=30)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        "default", "classify_x_to_y", 123)


def test_regress(stub):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    _examples(request, x=2.0)
    result = stub.Regress(request, timeout=30)
    assert [r.value for r in result.result.regressions] == [3.0]
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        "default", "regress_x_to_y", 123)


def _multi(tasks, **features):
    request = inference_pb2.MultiInferenceRequest()
    for name, signature, method in tasks:
        task = request.tasks.add()
        task.model_spec.name = name
        task.model_spec.signature_name = signature
        task.method_name = f"tensorflow/serving/{method}"
    _examples(request, **features)
    return request


def test_multi_inference(stub):
    request = _multi([("default", "regress_x_to_y", "regress"), ("default", "classify_x_to_y", "classify")], x=2.0)
    result = stub.MultiInference(request, timeout=30)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for got, task in zip(result.results, request.tasks):
        assert (got.model_spec.name, got.model_spec.signature_name, got.model_spec.version.value) == (
            task.model_spec.name, task.model_spec.signature_name, 123)


MULTI_ERRORS = [  # multi_inference_test.cc
    ("different models", [("default", "regress_x_to_y", "regress"), ("other", "regress_x_to_y2", "regress")],
     "INVALID_ARGUMENT", "must access the same model name"),
    ("duplicate signature", [("default", "regress_x_to_y", "regress")] * 2,
     "INVALID_ARGUMENT", "Duplicate evaluation of signature: regress_x_to_y"),
    ("predict signature", [("default", "serving_default", "predict")], "UNIMPLEMENTED", "Unsupported signature"),
    ("classify on a regress signature", [("default", "regress_x_to_y", "classify")], "INVALID_ARGUMENT",
     "Expected classification signature method_name to be tensorflow/serving/classify."),
]


@pytest.mark.parametrize("tasks, code, message", [c[1:] for c in MULTI_ERRORS], ids=[c[0] for c in MULTI_ERRORS])
def test_multi_inference_errors(stub, tasks, code, message):
    with pytest.raises(grpc.RpcError) as info:
        stub.MultiInference(_multi(tasks, x=2.0), timeout=30)
    assert info.value.code().name == code and message in info.value.details()


def test_classify_without_examples_is_invalid(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(request, timeout=30)
    assert info.value.code().name == "INVALID_ARGUMENT" and "Input is empty" in info.value.details()


def test_get_model_status(half_plus_two_server):
    channel = grpc.insecure_channel(half_plus_two_server.target)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    result = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    channel.close()
    assert [(s.version, s.status.error_code) for s in result.model_version_status] == [(123, 0)]


# ---- both models from one config file, and its reload (testGoodModelConfig, testModelConfigReload) ----

GOOD_CONFIG = """
model_config_list {{
  config {{ name: "half_plus_two" base_path: "{two}" model_platform: "tensorflow" }}
  config {{ name: "half_plus_three" base_path: "{three}" model_platform: "tensorflow" }}
}}
"""


def test_good_model_config_serves_half_plus_two_and_half_plus_three(testdata):
    config = GOOD_CONFIG.format(two=testdata / "saved_model_half_plus_two_cpu",
                                three=testdata / "saved_model_half_plus_three")
    server = start_server(parse_model_config(config), rest_port=None)
    try:
        channel = grpc.insecure_channel(server.target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for specify_output in (True, False):
            verify_predict_request(stub, 3.0, 123, "half_plus_two", specify_output)
            verify_predict_request(stub, 4.0, 123, "half_plus_three", specify_output)
        channel.close()
    finally:
        server.stop()


def test_model_config_reload_polls_the_file(testdata, tmp_path):
    config = tmp_path / "model_config.txt"
    one = 'model_config_list {{ config {{ name: "{}" base_path: "{}" model_platform: "tensorflow" }} }}'
    config.write_text(one.format("half_plus_two", testdata / "saved_model_half_plus_two_cpu"))
    from genimg_serving.configs import read_model_config
    from genimg_serving.server import ModelServer

    server = ModelServer(read_model_config(config), config_file=config, grpc_port=0, rest_port=None,
                         poll_seconds=0.2).start()
    try:
        channel = grpc.insecure_channel(server.target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        verify_predict_request(stub, 3.0, 123, "half_plus_two", specify_output=False)
        config.write_text(one.format("half_plus_three", testdata / "saved_model_half_plus_three"))
        _eventually(lambda: verify_predict_request(stub, 4.0, 123, "half_plus_three", specify_output=False))
        channel.close()
    finally:
        server.stop()


def _eventually(check, seconds: float = 30.0):
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except (grpc.RpcError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# ---- GetModelStatus and reload on two versions (get_model_status_impl.cc, server_core.cc) ----

@pytest.fixture(scope="module")
def two_all(testdata):
    config = (f'model_config_list {{ config {{ name: "{TWO}" base_path: "{testdata / TWO}"'
              ' model_platform: "tensorflow" model_version_policy { all {} }'
              ' version_labels { key: "stable" value: 123 } } }')
    server = start_server(parse_model_config(config), rest_port=None)
    channel = grpc.insecure_channel(server.target)
    yield server, model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()
    server.stop()


def test_status_with_a_label_ignores_it_and_reports_every_version(two_all):
    _, model_stub = two_all
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = TWO
    request.model_spec.version_label = "stable"
    result = model_stub.GetModelStatus(request, timeout=30)
    assert [s.version for s in result.model_version_status] == [124, 123]


def test_reload_with_a_label_on_a_missing_version_is_failed_precondition(two_all, testdata):
    server, model_stub = two_all
    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add(name=TWO, base_path=str(testdata / TWO),
                                                         model_platform="tensorflow")
    config.model_version_policy.all.SetInParent()
    config.version_labels["gold"] = 999
    with pytest.raises(grpc.RpcError) as info:
        model_stub.HandleReloadConfigRequest(request, timeout=30)
    assert info.value.code().name == "FAILED_PRECONDITION"
    assert "version 999" in info.value.details()
    assert server.manager.configs[0].labels == {"stable": 123}  # nothing changed


def test_empty_model_name_is_invalid_argument(stub):
    request = predict_pb2.PredictRequest()
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=30)
    assert info.value.code().name == "INVALID_ARGUMENT"
    assert info.value.details() == "ModelSpec has no name specified."


# ---- replies: typed fields by default, tensor_content on request ----

def test_replies_fill_float_val_unless_tensor_content_is_asked_for(testdata):
    base = testdata / "saved_model_half_plus_two_cpu"
    server = start_server(single_model("default", base), rest_port=None, tensor_content=True)
    try:
        channel = grpc.insecure_channel(server.target)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "default"
        request.inputs["x"].dtype = types_pb2.DT_FLOAT
        request.inputs["x"].float_val.append(2.0)
        request.inputs["x"].tensor_shape.dim.add().size = 1
        y = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30).outputs["y"]
        channel.close()
        with Client(server.target) as client:  # the project's client reads either form
            got = client.predict("default", {"x": np.float32([[2.0]])})["y"]
    finally:
        server.stop()
    assert not y.float_val and np.frombuffer(y.tensor_content, "<f4").tolist() == [3.0]
    assert got.tolist() == [[3.0]]
