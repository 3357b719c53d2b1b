"""REST request handling: TF Serving's URL scheme and JSON formats.

``POST /v1/models/<name>[/versions/<n>|/labels/<l>]:predict`` with either
``{"instances": [...]}`` (row format, answered with ``predictions``) or
``{"inputs": ...}`` (columnar, answered with ``outputs``);
``GET /v1/models/<name>[/versions/<n>|/labels/<l>][/metadata]``.
Kept free of HTTP plumbing so tests can call ``handle`` directly.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import numpy as np
from google.protobuf import json_format

from genimg_serving import rest_json
from genimg_serving.errors import InvalidArgumentError, ServingError, UnimplementedError
from genimg_serving.protos import get_model_metadata_pb2, get_model_status_pb2, model_pb2
from genimg_serving.server import handlers, rest_inference
from genimg_serving.signatures import SIGNATURE_DEF

_VERSION = r"(?:/versions/(\d+)|/labels/([^/:]+))?"
# Case-sensitive, as TF Serving's path regex: ":PREDICT" is a malformed request.
PREDICT_RE = re.compile(rf"/v1/models/([^/:]+){_VERSION}:(classify|regress|predict)")
STATUS_RE = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION}(?:/(metadata))?")
INT64_MAX = 2**63 - 1


def handle(manager, metrics, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One REST request -> (HTTP status, JSON body)."""
    try:
        return 200, rest_json.dumps(_dispatch(manager, metrics, method, path, body))
    except ServingError as e:
        return e.http_status, rest_json.dumps({"error": e.message})


def _dispatch(manager, metrics, method: str, path: str, body: bytes):
    m = PREDICT_RE.fullmatch(path) if method == "POST" else None
    if m:
        spec = _model_spec(*m.groups()[:3])
        verb = m.group(4)
        with metrics.track(spec.name, verb.capitalize()):
            if verb == "predict":
                return predict(manager, spec, body)
            return rest_inference.classify_or_regress(manager, spec, _parse(body), verb)
    m = STATUS_RE.fullmatch(path) if method == "GET" else None
    if m:
        if not m.group(1):
            raise InvalidArgumentError("Missing model name in request.")
        spec = _model_spec(*m.groups()[:3])
        if m.group(4):
            with metrics.track(spec.name, "GetModelMetadata"):
                return metadata(manager, spec)
        return status(manager, spec)
    raise InvalidArgumentError(f"Malformed request: {method} {path}")


def _model_spec(name: str, version: str | None, label: str | None) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=unquote(name))
    if version:
        if int(version) > INT64_MAX:
            raise InvalidArgumentError(f"Failed to convert version: {version} to numeric.")
        spec.version.value = int(version)
    if label:
        spec.version_label = unquote(label)
    return spec


# ---- predict -------------------------------------------------------------------


def predict(manager, spec, body: bytes):
    doc = _parse(body)
    sig_name = doc.get("signature_name", "")
    if not isinstance(sig_name, str):
        raise InvalidArgumentError(
            f"JSON Value: {_short(doc)} not formatted correctly."
            " 'signature_name' key must be a string value.")
    spec.signature_name = sig_name
    servable = handlers.resolve(manager, spec)
    name = handlers.signature_name(spec)
    if name not in servable.signature_defs:
        raise InvalidArgumentError(f'Serving signature name: "{name}" not found in signature def')
    sig = servable.signature_defs[name]
    arrays, row_format = _request_tensors(doc, sig.inputs)
    handlers.check_input_names(sig, list(arrays))
    outputs = handlers.run_checked(servable, name, sig, arrays, [], manager.max_pixels)
    try:
        return _row_json(outputs) if row_format else _columnar_json(outputs)
    except rest_json.JsonTensorError as e:
        raise InvalidArgumentError(str(e)) from e


# Python's JSON messages as rapidjson words them (what TF Serving's clients match on).
_RAPIDJSON = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Expecting ',' delimiter": "Missing a comma or ']' after an array element.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
}


def _parse(body: bytes) -> dict:
    """The request's JSON object; text after it is ignored, as TF Serving ignores it."""
    if not body.strip():
        raise InvalidArgumentError("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
        doc, _ = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip()))
    except json.JSONDecodeError as e:
        raise InvalidArgumentError(f"JSON Parse error: {_RAPIDJSON.get(e.msg, e.msg)} at offset: {e.pos}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"JSON Parse error: {e}") from e
    except RecursionError:
        raise InvalidArgumentError("JSON Parse error: the document is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentError(f"JSON Value: {_short(doc)} Is not object")
    return doc


def _short(value, limit: int = 200) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _request_tensors(doc: dict, infos) -> tuple[dict[str, np.ndarray], bool]:
    if "instances" in doc and "inputs" in doc:
        raise InvalidArgumentError(
            f"JSON Value: {_short(doc)} Not formatted correctly expecting only one of"
            " 'inputs' or 'instances' keys to exist")
    if "instances" in doc:
        return _from_instances(doc, infos), True
    if "inputs" in doc:
        return _from_inputs(doc["inputs"], infos), False
    raise InvalidArgumentError("Missing 'inputs' or 'instances' key")


def _from_instances(doc: dict, infos) -> dict[str, np.ndarray]:
    instances = doc["instances"]
    if not isinstance(instances, list):
        raise InvalidArgumentError(f"JSON Value: {_short(doc)} Excepting 'instances' to be an list/array")
    if not instances:
        raise InvalidArgumentError(f"JSON Value: {_short(doc)} No values in 'instances' array")
    objects = isinstance(instances[0], dict) and not rest_json.is_b64(instances[0])
    if not objects:
        if len(infos) > 1:
            raise InvalidArgumentError(
                "instances is a plain list, but expecting list of objects as multiple input"
                " tensors required as per tensorinfo_map")
        alias = next(iter(infos))
        return {alias: _array(instances, infos[alias], "element of 'instances' list")}
    for i, item in enumerate(instances):
        if not isinstance(item, dict) or rest_json.is_b64(item):
            raise InvalidArgumentError(f"Expecting object but got list at item {i} of input list")
        if set(item) != set(infos):
            raise InvalidArgumentError(
                f"Failed to process element: {i} of 'instances' list. JSON object: {_short(item)}"
                f" keys must be equal to: {','.join(sorted(infos))}")
    return {a: _array([it[a] for it in instances], infos[a], f"key: {a} of 'instances' list")
            for a in infos}


def _from_inputs(value, infos) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or rest_json.is_b64(value):
        if len(infos) > 1:
            raise InvalidArgumentError(
                "inputs is a plain value/list, but expecting an object as multiple input tensors"
                " required as per tensorinfo_map")
        alias = next(iter(infos))
        return {alias: _array(value, infos[alias], "'inputs'")}
    missing = [a for a in sorted(infos) if a not in value]
    if missing:
        raise InvalidArgumentError(f"Missing named input: {missing[0]} in 'inputs' object.")
    return {a: _array(value[a], infos[a], f"key: {a} of 'inputs'") for a in infos}


def _array(value, info, where: str) -> np.ndarray:
    try:
        return rest_json.to_array(value, info.dtype)
    except rest_json.JsonTensorUnsupported as e:
        raise UnimplementedError(str(e)) from e
    except rest_json.JsonTensorError as e:
        raise InvalidArgumentError(f"Failed to process {where}. Error: {e}") from e


def _row_json(outputs: dict[str, np.ndarray]) -> dict:
    batch = None
    for name, value in outputs.items():
        if value.ndim == 0:
            raise InvalidArgumentError(f"Tensor name: {name} has no shape information ")
        if batch is not None and value.shape[0] != batch:
            raise InvalidArgumentError(
                f"Tensor name: {name} has inconsistent batch size: {value.shape[0]}"
                f" expecting: {batch}")
        batch = value.shape[0]
    if len(outputs) == 1:
        ((name, value),) = outputs.items()
        return {"predictions": rest_json.to_json(value, name.endswith("_bytes"))}
    columns = {n: rest_json.to_json(v, n.endswith("_bytes")) for n, v in outputs.items()}
    return {"predictions": [{n: columns[n][i] for n in sorted(columns)} for i in range(batch)]}


def _columnar_json(outputs: dict[str, np.ndarray]) -> dict:
    columns = {n: rest_json.to_json(v, n.endswith("_bytes")) for n, v in sorted(outputs.items())}
    return {"outputs": next(iter(columns.values())) if len(columns) == 1 else columns}


# ---- metadata and status -----------------------------------------------------------


def _as_dict(message) -> dict:
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)


def metadata(manager, spec) -> dict:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF])
    request.model_spec.CopyFrom(spec)
    response = handlers.get_model_metadata(manager, request)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF].Unpack(sig_map)
    return {"model_spec": _as_dict(response.model_spec),
            "metadata": {SIGNATURE_DEF: _as_dict(sig_map)}}


def status(manager, spec) -> dict:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.CopyFrom(spec)
    return _as_dict(handlers.get_model_status(manager, request))
