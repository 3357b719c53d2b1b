"""KServe's Open Inference Protocol (v2) through tritonclient: Triton, KServe, pytriton.

``V2Transport`` offers the same ``predict``/``metadata``/``status`` as the TF Serving
transports, so ``Client(target, protocol="v2")`` keeps its whole API (upscale,
generate, retries, deadlines). A v2 model has one signature; it is reported as
``serving_default`` so code written for TF Serving runs unchanged. Names, datatypes
and shapes come from the server's model metadata.

Targets: ``http(s)://host:8000`` speaks v2 over HTTP/JSON with binary tensors;
``grpc://host:8001`` or ``host:8001`` over gRPC (``inference.GRPCInferenceService``).
"""

from __future__ import annotations

import numpy as np

from genimg_serving.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    ServingError,
    UnavailableError,
    error_for,
)
from genimg_serving.signatures import DEFAULT_SIGNATURE, ModelMetadata, SignatureInfo, TensorInfo

# v2 datatype -> numpy dtype name (the protocol's tensor data types)
V2_TYPES = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
    "FP32": "float32", "FP64": "float64", "BYTES": "string",
}
NUMPY_TO_V2 = {v: k for k, v in V2_TYPES.items()}


class V2Transport:
    """One tritonclient InferenceServerClient (HTTP or gRPC), errors as genimg_serving's."""

    def __init__(self, target: str, *, tls: bool = False, auth_token: str | None = None,
                 max_message_bytes: int = 256 * 1024 * 1024, timeout: float = 30.0):
        self.http = target.startswith(("http://", "https://"))
        address = target.split("://", 1)[-1].rstrip("/")
        self._headers = {"authorization": f"Bearer {auth_token}"} if auth_token else None
        if self.http:
            from tritonclient import http as v2http

            self._client = v2http.InferenceServerClient(
                address, ssl=target.startswith("https://"), connection_timeout=timeout, network_timeout=timeout)
            self._module = v2http
        else:
            from tritonclient import grpc as v2grpc

            self._client = v2grpc.InferenceServerClient(
                address, ssl=tls, channel_args=[("grpc.max_receive_message_length", max_message_bytes),
                                                ("grpc.max_send_message_length", max_message_bytes)])
            self._module = v2grpc
        self.target = target

    def _call(self, fn, *args, **kwargs):
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, headers=self._headers, **kwargs)
        except InferenceServerException as e:
            raise _error(e) from None
        except (ConnectionError, OSError) as e:  # the HTTP client's refused/reset connections
            raise UnavailableError(f"cannot reach {self.target}: {e}") from None

    def _deadline(self, timeout):
        """gRPC calls take a per-call deadline; the HTTP client has its network_timeout."""
        return {"client_timeout": timeout} if not self.http and timeout is not None else {}

    def metadata(self, model, *, version, label, timeout=None) -> ModelMetadata:
        _no_label(label)
        kwargs = {"as_json": True, **self._deadline(timeout)} if not self.http else {}
        doc = self._call(self._client.get_model_metadata, model, _v(version), **kwargs)
        inputs = {t["name"]: _tensor(t) for t in doc.get("inputs", [])}
        outputs = {t["name"]: _tensor(t) for t in doc.get("outputs", [])}
        signature = SignatureInfo(DEFAULT_SIGNATURE, doc.get("platform", ""), inputs, outputs)
        versions = [int(v) for v in doc.get("versions", [])]
        answered = int(version) if version is not None else (max(versions) if versions else None)
        return ModelMetadata(doc.get("name", model), answered, {DEFAULT_SIGNATURE: signature})

    def status(self, model, *, version, label, timeout=None):
        from genimg_serving.transports import VersionStatus

        meta = self.metadata(model, version=version, label=label, timeout=timeout)
        ready = self._call(self._client.is_model_ready, model, _v(version), **self._deadline(timeout))
        return [VersionStatus(meta.version or 0, "AVAILABLE" if ready else "UNAVAILABLE")]

    def predict(self, model, inputs, *, version, label, signature, output_filter, timeout, output_infos=None):
        _no_label(label)
        if signature != DEFAULT_SIGNATURE:
            raise InvalidArgumentError(f"a v2 model has one signature ({DEFAULT_SIGNATURE}), not '{signature}'")
        wanted = list(output_filter or output_infos or [])
        for name in wanted:
            if output_infos is not None and name not in output_infos:
                raise InvalidArgumentError(f"output {name} not in the model's outputs {sorted(output_infos)}")
        request = [self._input(name, np.asarray(a)) for name, a in inputs.items()]
        outputs = [self._output(name) for name in wanted] or None
        result = self._call(self._client.infer, model, request, model_version=_v(version), outputs=outputs,
                            **self._deadline(timeout))
        response = result.get_response() if self.http else result.get_response(as_json=True)
        names = wanted or [o["name"] for o in response.get("outputs", [])]
        answered = response.get("model_version")
        return {n: result.as_numpy(n) for n in names}, int(answered) if answered else None

    def _input(self, name: str, array: np.ndarray):
        kind = "string" if array.dtype.kind in "OSU" else array.dtype.name
        if kind not in NUMPY_TO_V2:
            raise InvalidArgumentError(f"input {name}: the v2 protocol has no type for {array.dtype}")
        tensor = self._module.InferInput(name, list(array.shape), NUMPY_TO_V2[kind])
        if kind == "string":
            array = array.astype(object)
        if self.http:
            tensor.set_data_from_numpy(array, binary_data=True)
        else:
            tensor.set_data_from_numpy(array)
        return tensor

    def _output(self, name: str):
        if self.http:
            return self._module.InferRequestedOutput(name, binary_data=True)
        return self._module.InferRequestedOutput(name)

    def close(self) -> None:
        self._client.close()


def _tensor(t: dict) -> TensorInfo:
    dtype = V2_TYPES.get(t["datatype"], t["datatype"].lower())
    shape = tuple(None if int(d) < 0 else int(d) for d in t.get("shape", []))
    return TensorInfo(t["name"], dtype, shape, t["name"])


def _v(version) -> str:
    return "" if version is None else str(int(version))


def _no_label(label) -> None:
    if label:
        raise InvalidArgumentError(f"the v2 protocol has no version labels (got '{label}'); pass version=")


def _error(e) -> ServingError:
    """A tritonclient error as genimg_serving's class, keeping the server's message."""
    import grpc

    status, message = str(e.status() or ""), e.message() or str(e)
    if status.startswith("StatusCode."):
        return error_for(grpc.StatusCode[status.split(".", 1)[1]], message)
    if "not found" in message or "unknown model" in message:  # Triton's HTTP says so with a 400
        return NotFoundError(message)
    by_http = {"400": InvalidArgumentError, "404": NotFoundError, "503": UnavailableError,
               "504": DeadlineExceededError}
    if status in by_http:
        return by_http[status](message)
    if "Deadline" in message or "timed out" in message:
        return DeadlineExceededError(message)
    return error_for(grpc.StatusCode.UNKNOWN if status else grpc.StatusCode.UNAVAILABLE, message)
