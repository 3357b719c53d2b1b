"""The API's logic on protos, shared by the gRPC and REST front ends.

Checks and messages follow TF Serving (predict_util.cc,
get_model_metadata_impl.cc, get_model_status_impl.cc) so that a client sees
the same codes from this server as from tensorflow_model_server.
"""

from __future__ import annotations

import numpy as np

from genimg_serving.errors import InvalidArgumentError, NotFoundError, ResourceExhaustedError
from genimg_serving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)
from genimg_serving.signatures import DEFAULT_SIGNATURE, SIGNATURE_DEF
from genimg_serving.tensors import (
    TensorConversionError,
    data_type,
    dtype_name,
    to_ndarray,
    to_tensor_proto,
)

_STATE = get_model_status_pb2.ModelVersionStatus.State


def resolve(manager, model_spec):
    """The Servable a ModelSpec names (latest, a version, or a label)."""
    if not model_spec.name:  # ServerCore::GetServableHandle's first check
        raise InvalidArgumentError("ModelSpec has no name specified.")
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return manager.resolve(model_spec.name, version, label)


def signature_name(model_spec) -> str:
    return model_spec.signature_name or DEFAULT_SIGNATURE


# ---- Predict -----------------------------------------------------------------


def predict(manager, request) -> predict_pb2.PredictResponse:
    return predict_on(resolve(manager, request.model_spec), request, manager.max_pixels,
                      manager.tensor_content)


def predict_on(servable, request, max_pixels: int | None = None,
               tensor_content: bool = False) -> predict_pb2.PredictResponse:
    """Predict on a given Servable (also used to replay warmup requests).

    Replies fill the typed fields (``float_val`` ...) as TF Serving does, or
    ``tensor_content`` with its --enable_serialization_as_tensor_content.
    """
    name = signature_name(request.model_spec)
    sig = servable.signature_def(name)
    check_input_names(sig, list(request.inputs))
    arrays = {}
    for alias, proto in request.inputs.items():
        try:
            arrays[alias] = to_ndarray(proto)
        except TensorConversionError as e:
            raise InvalidArgumentError(f"tensor parsing error: {alias} ({e})") from e
    outputs = run_checked(servable, name, sig, arrays, list(request.output_filter), max_pixels)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = name
    for alias, value in outputs.items():
        to_tensor_proto(value, sig.outputs[alias].dtype, out=response.outputs[alias],
                        content=tensor_content)
    return response


def check_input_names(sig, names: list[str]) -> None:
    expected = set(sig.inputs)
    sent = set(names)
    if len(sent) > len(expected) or (len(sent) < len(expected) and not sig.defaults):
        raise InvalidArgumentError(
            f"input size does not match signature: {len(sent)}!={len(expected)}"
            f" len({{{_join(sent)}}}) != len({{{_join(expected)}}})."
            f" Sent extra: {{{_join(sent - expected)}}}."
            f" Missing but required: {{{_join(expected - sent)}}}."
        )
    extra = sorted(sent - expected)
    if extra:
        raise InvalidArgumentError(
            f"input tensor alias not found in signature: {extra[0]}."
            f" Inputs expected to be in the set {{{_join(expected)}}}."
        )


def run_checked(servable, name: str, sig, arrays: dict, output_filter: list[str],
                max_pixels: int | None = None) -> dict:
    """Check dtypes, the pixel cap and the output filter, then run the signature.

    Shapes are left to the runtime, as TF Serving leaves them (predict_util.cc
    checks names and dtypes only): x of shape [3] for half_plus_two's [-1, 1]
    is answered, and a shape the graph cannot take fails there, with TF's message.
    """
    for alias, array in arrays.items():
        check_tensor(alias, array, sig.inputs[alias])
        check_pixels(alias, array, max_pixels)
    seen = set()
    for alias in output_filter:
        if alias not in sig.outputs:
            raise InvalidArgumentError(
                f"output tensor alias not found in signature: {alias}"
                f" Outputs expected to be in the set {{{_join(sig.outputs)}}}."
            )
        if alias in seen:
            raise InvalidArgumentError(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    outputs = servable.run(name, arrays)
    wanted = output_filter or list(sig.outputs)
    return {alias: outputs[alias] for alias in wanted}


def check_tensor(alias: str, array: np.ndarray, info) -> None:
    """INVALID_ARGUMENT unless the dtype is the signature's."""
    sent = data_type(array.dtype)
    if sent != info.dtype:
        raise InvalidArgumentError(
            f"Expects input {alias} to be {dtype_name(info.dtype)} but"
            f" {dtype_name(sent)} is provided"
        )


def check_pixels(alias: str, array: np.ndarray, max_pixels: int | None) -> None:
    """RESOURCE_EXHAUSTED when an image batch (N, H, W, C) holds more than
    ``max_pixels`` pixels: a x4 upscaler's activations grow with the output,
    so a request well under the message-size cap could still exhaust memory.
    (The local server's own guard; TF Serving has no such check.)"""
    if max_pixels is None or array.ndim != 4:
        return
    pixels = int(array.shape[0]) * int(array.shape[1]) * int(array.shape[2])
    if pixels > max_pixels:
        raise ResourceExhaustedError(
            f"input {alias} holds {pixels} pixels (batch x H x W = {' x '.join(map(str, array.shape[:3]))});"
            f" this server accepts at most {max_pixels} per request (serve --max-pixels)"
        )


def _join(names) -> str:
    return ",".join(sorted(names))


# ---- GetModelMetadata ----------------------------------------------------------


def get_model_metadata(manager, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if not request.HasField("model_spec"):
        raise InvalidArgumentError("Missing ModelSpec")
    if not request.metadata_field:
        raise InvalidArgumentError("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF:
            raise InvalidArgumentError(f"Metadata field {field} is not supported")
    servable = resolve(manager, request.model_spec)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in servable.signature_defs.items():
        sig_map.signature_def[key].CopyFrom(sig)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF].Pack(sig_map)
    return response


# ---- GetModelStatus ------------------------------------------------------------


def get_model_status(manager, request) -> get_model_status_pb2.GetModelStatusResponse:
    if not request.HasField("model_spec"):
        raise InvalidArgumentError("Missing ModelSpec")
    spec = request.model_spec
    name = spec.name
    states = manager.states(name)
    # A version label is ignored: TF Serving's get_model_status_impl.cc looks only
    # at an explicit version and otherwise reports every version.
    if spec.WhichOneof("version_choice") == "version":
        version = spec.version.value
        if version not in states:
            raise NotFoundError(f"Could not find version {version} of model {name}")
        states = {version: states[version]}
    elif not states:
        raise NotFoundError(f"Could not find any versions of model {name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in sorted(states, reverse=True):
        state = states[version]
        status = response.model_version_status.add(version=version, state=_STATE.Value(state.state))
        status.status.error_code = state.error_code
        status.status.error_message = state.error_message
    return response

