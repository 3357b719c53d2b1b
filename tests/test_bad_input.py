"""Bad input, table-driven: each row is an input, the expected error kind and a message fragment.

Only rows that are not tested elsewhere (test_export_cli, test_cli_zoo,
edge/tests/test_cli, serving/tests/test_serving_errors cover the rest).

- CLI rows (``genimg-export`` through CliRunner, ``genimg-edge`` through its
  ``main``): non-zero exit, exactly one ``error:`` line holding the fragment,
  no traceback, no output file left behind.
- Server rows (raw gRPC stubs and raw HTTP, so that the server, not the
  client, answers): TF Serving's status code and message, no filesystem
  access while the request is handled (a Python audit hook records every
  open/listdir/... from every thread), and a good request answered after
  each bad one. A valid SavedModel sits just outside the base path, so a
  name that escaped the base path would find it.
- NaN and Inf inputs pass through unchanged, as in TF Serving.

The server has no batch cap of its own: the message-size cap bounds a batch
(serving/tests/test_serving_client.py::test_message_size_cap_on_both_ports).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from harness.serving import start_server, write_affine
from PIL import Image

from genimg_serving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from genimg_serving.tensors import to_ndarray, to_tensor_proto

CAP = "over the cap of 16,777,216"  # genimg_edge.images.DEFAULT_MAX_PIXELS


# ---- the bad files -------------------------------------------------------------------


def _real_artifacts(d: Path) -> None:
    """tiny.keras, tiny.tflite (the project's exporter) and a SavedModel with no variables/."""
    from harness.tiny import tiny_spec

    from genimg_export.exporters import export_variant
    from genimg_export.exporters.saved_model import SavedModelSource

    spec, model = tiny_spec()
    model.save(d / "tiny.keras")
    with SavedModelSource(spec, model) as source:
        export_variant(spec, model, d / "export", "tflite", "fp32", source)
        shutil.copytree(source.path(), d / "novars")
    shutil.rmtree(d / "novars" / "variables")
    shutil.copy(d / "export" / "tflite" / "tiny.fp32.tflite", d / "tiny.tflite")


def _damaged_models(d: Path) -> None:
    keras_bytes = (d / "tiny.keras").read_bytes()
    (d / "trunc.keras").write_bytes(keras_bytes[: len(keras_bytes) // 2])
    flipped = bytearray(keras_bytes)
    for i in range(200, len(flipped) - 200, 97):  # members damaged, zip directory intact
        flipped[i] ^= 0xFF
    (d / "crc.keras").write_bytes(bytes(flipped))
    (d / "empty.keras").write_bytes(b"")
    (d / "nosm").mkdir()
    (d / "badpb").mkdir()
    (d / "badpb" / "saved_model.pb").write_bytes(b"\xff\xfe not a protobuf")
    tflite = (d / "tiny.tflite").read_bytes()
    (d / "cut.tflite").write_bytes(tflite[: len(tflite) // 2])
    (d / "corrupt.onnx").write_bytes(b"\x08\x07 not an onnx model")
    (d / "empty.onnx").write_bytes(b"")
    art = d / "broken_artifacts"  # the export layout, both files damaged
    (art / "tflite").mkdir(parents=True)
    (art / "onnx").mkdir()
    (art / "tflite" / "tiny.fp32.tflite").write_bytes(tflite[: len(tflite) // 2])
    (art / "onnx" / "tiny.onnx").write_bytes(b"\x08\x07 not an onnx model")


def _bad_data(d: Path) -> None:
    (d / "notimg.png").write_text("not an image")
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(d / "ok.png")
    png = (d / "ok.png").read_bytes()
    (d / "cut.png").write_bytes(png[: len(png) // 2])
    Image.new("L", (5000, 4000)).save(d / "huge.png")  # 20 M pixels, a 20 KB file
    for name, source in (("cal_text", "notimg.png"), ("cal_huge", "huge.png")):
        (d / name).mkdir()
        shutil.copy(d / source, d / name / "a.png")
    np.savez(d / "rgba.npz", x=np.zeros((4, 8, 8, 4), np.float32))
    np.savez(d / "scalar.npz", x=np.float32(1))


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    _real_artifacts(d)
    _damaged_models(d)
    _bad_data(d)
    return d


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def _files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file()] if out.exists() else []


def assert_one_clean_error(code: int, output: str, exit_code: int, fragment: str) -> None:
    assert code == exit_code, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], output


# ---- genimg-export ---------------------------------------------------------------------

TFLITE = ["tflite", "--out", "{out}", "--quantize", "fp32", "--model"]
INT8 = ["tflite", "--out", "{out}", "--quantize", "int8", "--model", "{d}/tiny.keras"]
PARITY = ["parity", "--json", "{out}/rows.json", "--model"]
TINY_PARITY = [*PARITY, "{d}/tiny.keras"]
GENERATE = ["generate", "--model", "{d}/tiny.keras", "--output", "{out}/o.png", "--input"]
EXPORT_ROWS = [
    ("tflite truncated .keras", [*TFLITE, "{d}/trunc.keras"], 2, "not a zip archive; truncated?"),
    ("tflite .keras with damaged members", [*TFLITE, "{d}/crc.keras"], 2, "not a valid .keras file (Bad CRC-32"),
    ("tflite empty .keras", [*TFLITE, "{d}/empty.keras"], 2, "not a valid .keras file"),
    ("tflite folder without saved_model.pb", [*TFLITE, "{d}/nosm"], 2, "is a directory but not a SavedModel"),
    ("tflite corrupt saved_model.pb", [*TFLITE, "{d}/badpb"], 2, "cannot load SavedModel"),
    ("tflite SavedModel without variables", [*TFLITE, "{d}/novars"], 2, "cannot load SavedModel"),
    ("tflite missing SavedModel folder", [*TFLITE, "{d}/gone/1"], 2, "no such model file or directory"),
    ("tflite a .tflite as --model", [*TFLITE, "{d}/tiny.tflite"], 2, "is not a .keras file"),
    ("tflite an .onnx as --model", [*TFLITE, "{d}/corrupt.onnx"], 2, "is not a .keras file"),
    ("tflite non-image in calibration folder", [*INT8, "--calibration-dir", "{d}/cal_text"], 2,
     "calibration image: {d}/cal_text/a.png is not a readable image"),
    ("tflite calibration image over the pixel cap", [*INT8, "--calibration-dir", "{d}/cal_huge"], 2, CAP),
    ("tflite calibration with 4 channels", [*INT8, "--calibration-npz", "{d}/rgba.npz"], 2,
     "'x' has shape [4, 8, 8, 4]; expected [N, any, any, 3]"),
    ("tflite calibration file not an .npz", [*INT8, "--calibration-npz", "{d}/ok.png"], 2, "is not an .npz file"),
    ("parity truncated .keras", [*PARITY, "{d}/trunc.keras"], 2, "not a zip archive; truncated?"),
    ("parity corrupt saved_model.pb", [*PARITY, "{d}/badpb"], 2, "cannot load SavedModel"),
    ("parity SavedModel without variables", [*PARITY, "{d}/novars"], 2, "cannot load SavedModel"),
    ("parity a .tflite as --model", [*PARITY, "{d}/tiny.tflite"], 2, "is not a .keras file"),
    ("parity samples with 4 channels", [*TINY_PARITY, "--samples-npz", "{d}/rgba.npz"], 2,
     "--samples-npz: 'x' has shape [4, 8, 8, 4]; expected [N, any, any, 3]"),
    ("parity samples holding a scalar", [*TINY_PARITY, "--samples-npz", "{d}/scalar.npz"], 2, "has shape []"),
    ("parity samples file not an .npz", [*TINY_PARITY, "--samples-npz", "{d}/notimg.png"], 2,
     "is not a readable .npz file"),
    ("parity threads 0", [*TINY_PARITY, "--threads", "0"], 2, "--threads must be at least 1, got 0"),
    ("parity truncated .tflite artifact",
     ["parity", "--model", "{d}/tiny.keras", "--out", "{d}/broken_artifacts", "--backends", "tflite"], 1,
     "tiny.fp32.tflite is truncated or corrupt"),
    ("parity corrupt .onnx artifact",
     ["parity", "--model", "{d}/tiny.keras", "--out", "{d}/broken_artifacts", "--backends", "onnx"], 1,
     "onnxruntime cannot load"),
    ("info truncated .tflite", ["info", "{d}/cut.tflite"], 2, "is truncated or corrupt"),
    ("info corrupt .onnx", ["info", "{d}/corrupt.onnx"], 2, "is not a readable ONNX file"),
    ("info empty .onnx", ["info", "{d}/empty.onnx"], 2, "and no embedded genimg_export metadata"),
    ("info SavedModel folder with no manifest", ["info", "{d}/novars"], 2, "no manifest.json entry"),
    ("generate image over the pixel cap", [*GENERATE, "{d}/huge.png"], 2, CAP),
    ("generate truncated PNG", [*GENERATE, "{d}/cut.png"], 2, "image file is truncated"),
    ("generate a folder as the image", [*GENERATE, "{d}/nosm"], 2, "is a directory; expected an image file"),
]


@pytest.mark.parametrize("args, exit_code, fragment", [r[1:] for r in EXPORT_ROWS], ids=[r[0] for r in EXPORT_ROWS])
def test_export_cli_bad_input_is_one_clean_line(cli, bad, tmp_path, args, exit_code, fragment):
    out = tmp_path / "out"
    out.mkdir()  # a good place for --json/--output (a missing folder is refused first: test_cli_first_hour)
    before = _listing(bad)
    fill = {"d": str(bad), "out": str(out)}
    result = cli(*(a.format(**fill) for a in args))
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert_one_clean_error(result.exit_code, result.output, exit_code, fragment.format(**fill))
    assert _files(out) == [] and _listing(bad) == before  # nothing written, nothing beside the inputs


# ---- genimg-edge -----------------------------------------------------------------------

RUN_IMAGE = ["{d}/tiny.tflite", "--output", "{out}/o.png", "--input"]
EDGE_ROWS = [
    ("a .keras file as the model", ["{d}/tiny.keras", "--info"], "is not a TFLite model (no 'TFL3' identifier"),
    ("an .onnx file as the model", ["{d}/corrupt.onnx", "--info"], "is not a TFLite model"),
    ("a SavedModel folder as the model", ["{d}/novars", "--info"], "is a directory (a SavedModel?)"),
    ("image over the pixel cap", [*RUN_IMAGE, "{d}/huge.png"], CAP),
    ("image over the pixel cap, tiled", [*RUN_IMAGE, "{d}/huge.png", "--tile", "64"], CAP),
    ("truncated PNG", [*RUN_IMAGE, "{d}/cut.png"], "image file is truncated"),
    ("a text file as the image", [*RUN_IMAGE, "{d}/notimg.png"], "is not a readable image"),
    ("a folder as the image", [*RUN_IMAGE, "{d}/nosm"], "is a directory; expected an image file"),
    ("bench size over the pixel cap", ["{d}/tiny.tflite", "--bench", "--size", "100000x100000"],
     "= 10,000,000,000 pixels is over the cap of 262,144"),
    ("bench batch over the pixel cap", ["{d}/tiny.tflite", "--bench", "--count", "1000", "--size", "64x64"],
     "--bench batch 1000 x 64x64"),
]


@pytest.mark.parametrize("args, fragment", [r[1:] for r in EDGE_ROWS], ids=[r[0] for r in EDGE_ROWS])
def test_edge_cli_bad_input_is_one_clean_line(bad, tmp_path, capsys, args, fragment):
    from genimg_edge.__main__ import main

    out = tmp_path / "out"
    out.mkdir()
    code = main([a.format(d=bad, out=out) for a in args])
    stdout, stderr = capsys.readouterr()
    assert_one_clean_error(code, stderr, 2, fragment)
    assert stderr.count("\n") == 1 and _files(out) == []


# ---- the server: hostile names, NaN/Inf ------------------------------------------------


class FilesystemAudit:
    """Records filesystem audit events raised by any thread while ``recording``.

    (An audit hook cannot be removed; when not recording it only reads a flag.)
    """

    EVENTS = {"open", "os.listdir", "os.scandir", "os.mkdir", "os.remove", "os.rename", "os.rmdir",
              "os.chdir", "shutil.rmtree", "shutil.copytree"}

    def __init__(self):
        self.on, self.seen = False, []
        sys.addaudithook(self._hook)

    def _hook(self, event, args):
        if self.on and event in self.EVENTS:
            self.seen.append((event, str(args[0]) if args else ""))

    @contextlib.contextmanager
    def recording(self):
        self.seen = []
        self.on = True
        try:
            yield self.seen
        finally:
            self.on = False


@pytest.fixture(scope="module")
def audit():
    return FilesystemAudit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Model "m" (y = 2x + 1) from root/models/m; a valid SavedModel at root/secret, outside it."""
    from genimg_serving.configs import single_model

    root = tmp_path_factory.mktemp("hostile")
    for folder in (root / "models" / "m", root / "secret"):
        folder.mkdir(parents=True)
    write_affine(root / "models" / "m" / "1", 2.0, 1.0)
    write_affine(root / "secret" / "1", 0.0, 7.0)
    srv = start_server(single_model("m", root / "models" / "m"))
    srv.root = root
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def stubs(server):
    """method name -> the stub's callable."""
    with grpc.insecure_channel(server.target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        model = model_service_pb2_grpc.ModelServiceStub(channel)
        yield {"Predict": predict.Predict, "GetModelMetadata": predict.GetModelMetadata,
               "GetModelStatus": model.GetModelStatus}


X = np.ones((1, 1, 1, 3), np.float32)
HOSTILE_NAMES = [
    ("dot-dot", ".."), ("parent", "../secret"), ("through the model", "m/../../secret"),
    ("version path", "m/1"), ("trailing slash", "m/"), ("absolute", "{root}/secret"),
    ("nul after the name", "m\x00"), ("nul only", "\x00"), ("nul then path", "m\x00/../../secret"),
]
METHODS = [
    ("Predict", "NOT_FOUND", "Servable not found for request: Latest({name})"),
    ("GetModelMetadata", "NOT_FOUND", "Servable not found for request: Latest({name})"),
    ("GetModelStatus", "NOT_FOUND", "Could not find any versions of model {name}"),
]
GRPC_ROWS = [(f"{method} {nid}", method, name, {}, code, message)
             for nid, name in HOSTILE_NAMES for method, code, message in METHODS] + [
    ("Predict signature ../", "Predict", "m", {"signature_name": "../../serving_default"}, "FAILED_PRECONDITION",
     'Serving signature key "../../serving_default" not found.'),
    ("Predict label ../", "Predict", "m", {"version_label": "../1"}, "INVALID_ARGUMENT",
     "Unrecognized servable version label: ../1"),
]


def grpc_request(method: str, name: str, x=X, **spec):
    if method == "GetModelStatus":
        request = get_model_status_pb2.GetModelStatusRequest()
    elif method == "GetModelMetadata":
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    else:
        request = predict_pb2.PredictRequest()
        to_tensor_proto(x, out=request.inputs["x"])
    request.model_spec.name = name
    for key, value in spec.items():
        setattr(request.model_spec, key, value)
    return request


def good_grpc_predict(stubs) -> None:
    response = stubs["Predict"](grpc_request("Predict", "m"), timeout=30)
    np.testing.assert_array_equal(to_ndarray(response.outputs["y"]), 2 * X + 1)


@pytest.mark.parametrize("method, name, spec, code, message", [r[1:] for r in GRPC_ROWS],
                         ids=[r[0] for r in GRPC_ROWS])
def test_grpc_hostile_names_touch_no_file_and_the_server_keeps_serving(
        server, stubs, audit, method, name, spec, code, message):
    name = name.format(root=server.root)
    with audit.recording() as seen, pytest.raises(grpc.RpcError) as info:
        stubs[method](grpc_request(method, name, **spec), timeout=30)
    assert info.value.code().name == code
    assert message.format(name=name) in info.value.details()
    assert seen == []
    good_grpc_predict(stubs)
    assert server.manager.served() == {"m": [1]}


def rest(server, method: str, path: str, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    status, payload = response.status, json.loads(response.read())  # json reads NaN/Infinity
    conn.close()
    return status, payload


ONE = json.dumps({"instances": X.tolist()}).encode()
REST_ROWS = [
    ("predict parent, encoded", "POST", "/v1/models/..%2Fsecret:predict", 404, "Latest(../secret)"),
    ("predict through the model", "POST", "/v1/models/m%2F..%2F..%2Fsecret:predict", 404, "Latest(m/../../secret)"),
    ("predict absolute", "POST", "/v1/models/{root_q}%2Fsecret:predict", 404, "Servable not found"),
    ("predict parent, raw", "POST", "/v1/models/../secret:predict", 400, "Malformed request"),
    ("predict nul", "POST", "/v1/models/m%00:predict", 404, "Latest(m\x00)"),
    ("predict nul then path", "POST", "/v1/models/m%00%2F..%2Fsecret:predict", 404, "Latest(m\x00/../secret)"),
    ("predict label ../", "POST", "/v1/models/m/labels/..%2F1:predict", 400, "version label: ../1"),
    ("predict version ..", "POST", "/v1/models/m/versions/..:predict", 400, "Malformed request"),
    ("metadata parent", "GET", "/v1/models/..%2F..%2Fsecret/metadata", 404, "Latest(../../secret)"),
    ("metadata nul", "GET", "/v1/models/%00/metadata", 404, "Latest(\x00)"),
]


@pytest.mark.parametrize("method, path, status, message", [r[1:] for r in REST_ROWS], ids=[r[0] for r in REST_ROWS])
def test_rest_hostile_paths_touch_no_file_and_the_server_keeps_serving(server, audit, method, path, status, message):
    path = path.format(root_q=str(server.root).replace("/", "%2F"))
    with audit.recording() as seen:
        got_status, doc = rest(server, method, path, ONE if method == "POST" else None)
    assert (got_status, set(doc)) == (status, {"error"}) and message in doc["error"]
    assert seen == []
    assert rest(server, "POST", "/v1/models/m:predict", ONE) == (200, {"predictions": (2 * X + 1).tolist()})
    assert server.manager.served() == {"m": [1]}


def test_the_audit_sees_filesystem_access_when_there_is_some(server, audit):
    """The control for ``seen == []`` above: a poll of the base path is recorded."""
    with audit.recording() as seen:
        server.manager.poll()
    assert any(str(server.root / "models" / "m") in path for _, path in seen), seen


NAN_INF = np.array([np.nan, np.inf, -np.inf], np.float32).reshape(1, 1, 1, 3)


def test_nan_and_inf_pass_through_grpc_unchanged(stubs):
    """As in TF Serving: no input validation of values; the model decides (2x + 1 keeps them)."""
    y = to_ndarray(stubs["Predict"](grpc_request("Predict", "m", x=NAN_INF), timeout=30).outputs["y"])
    np.testing.assert_array_equal(y, NAN_INF)  # NaN == NaN here


@pytest.mark.parametrize("body, status, expected", [
    (b'{"instances": [[[[NaN, Infinity, -Infinity]]]]}', 200, {"predictions": NAN_INF.tolist()}),
    (b'{"inputs": [[[[NaN, Infinity, -Infinity]]]]}', 200, {"outputs": NAN_INF.tolist()}),
    (b'{"instances": [[[["NaN", "Infinity", "-Infinity"]]]]}', 400, None),
], ids=["row format literals", "columnar literals", "quoted strings"])
def test_nan_and_inf_over_rest_use_the_json_literals(server, body, status, expected):
    """TF Serving's JSON (rapidjson) reads and writes NaN/Infinity literals; quoted, they are strings."""
    got_status, doc = rest(server, "POST", "/v1/models/m:predict", body)
    assert got_status == status
    if expected is None:
        assert 'JSON Value: "NaN" Type: String is not of expected type: float' in doc["error"]
    else:
        key = next(iter(expected))
        np.testing.assert_array_equal(np.array(doc[key], np.float32), np.array(expected[key], np.float32))
