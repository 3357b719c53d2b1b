"""REST ``:classify`` and ``:regress``: JSON Examples in, ``{"results": ...}`` out.

The request is ``{"signature_name": ..., "context": {features}, "examples": [{features}, ...]}``;
a feature is a value or a list of values: a JSON float goes to float_list, an
integer (or bool) to int64_list, a string or ``{"b64": ...}`` to bytes_list,
as TF Serving's json_tensor.cc builds them. Classify answers
``{"results": [[[label, score], ...], ...]}``, regress ``{"results": [value, ...]}``.
"""

from __future__ import annotations

import base64
import binascii

from genimg_serving import rest_json
from genimg_serving.errors import InvalidArgumentError
from genimg_serving.protos import classification_pb2, regression_pb2
from genimg_serving.server import inference

_KIND = {bytes: "bytes_list", float: "float_list", int: "int64_list"}
_KIND_NAME = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


def classify_or_regress(manager, spec, doc: dict, verb: str) -> dict:
    """Answer a parsed :classify or :regress body for the model ``spec`` names."""
    request = (classification_pb2.ClassificationRequest() if verb == "classify"
               else regression_pb2.RegressionRequest())
    request.model_spec.CopyFrom(spec)
    sig_name = doc.get("signature_name", "")
    if not isinstance(sig_name, str):
        raise InvalidArgumentError(
            f"JSON Value: {rest_json.short(doc)} not formatted correctly. 'signature_name' key must be a string value.")
    request.model_spec.signature_name = sig_name
    _fill_input(doc, request.input, verb)
    if verb == "classify":
        result = inference.classify(manager, request).result
        return {"results": [[[c.label, c.score] for c in row.classes] for row in result.classifications]}
    result = inference.regress(manager, request).result
    return {"results": [r.value for r in result.regressions]}


def _fill_input(doc: dict, input_, verb: str) -> None:
    examples = doc.get("examples")
    if examples is None:
        raise InvalidArgumentError(
            f"JSON Value: {rest_json.short(doc)} When method is {verb}, key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise InvalidArgumentError(f"JSON Value: {rest_json.short(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise InvalidArgumentError(f"JSON Value: {rest_json.short(doc)} 'examples' value is an empty array")
    if "context" in doc:
        listed = input_.example_list_with_context
        _example(doc["context"], listed.context)
        target = listed.examples
    else:
        target = input_.example_list.examples
    for item in examples:
        _example(item, target.add())


def _example(value, example) -> None:
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"Example must be JSON object but got JSON {rest_json.json_type(value)}")
    for name, content in value.items():
        feature = example.features.feature[name]  # the request is dropped on an error
        for v in content if isinstance(content, list) else [content]:
            _add_value(v, name, feature)


def _add_value(v, name: str, feature) -> None:
    if isinstance(v, bool):
        v = int(v)
    elif isinstance(v, str):
        v = v.encode("utf-8")
    elif rest_json.is_b64(v):
        try:
            v = base64.b64decode(v[rest_json.B64], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgumentError("Unable to base64 decode") from None
    if type(v) not in _KIND:
        raise InvalidArgumentError(
            f"Feature: {name} has element with unexpected JSON type: {rest_json.json_type(v)}")
    kind = _KIND[type(v)]
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise InvalidArgumentError(
            f"Unexpected element type in feature: {name} expecting type: {_KIND_NAME[current]}")
    if kind == "int64_list" and not -(2**63) <= v < 2**63:
        raise InvalidArgumentError(f"Feature: {name} has uint64 element. Only int64 is supported.")
    getattr(feature, kind).value.append(v)

