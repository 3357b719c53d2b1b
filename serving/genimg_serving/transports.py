"""The two ways to reach a server: gRPC (default) and TF Serving's REST API.

Both offer ``predict``, ``metadata`` and ``status`` with the same arguments
and raise ``genimg_serving.errors`` classes carrying the server's message;
``Client`` adds retries, deadlines and the helpers on top.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import grpc
import numpy as np

from genimg_serving import rest_json, signatures
from genimg_serving.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    UnavailableError,
    code_for_http,
    error_for,
)

_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def tf_serving_protos():
    """TF Serving's protos (``tensorflow-serving-api``), needed for its gRPC API only.

    The base install of genimg-serving (REST and v2) has no TensorFlow; this says
    which extra brings them.
    """
    try:
        from genimg_serving import protos
    except ImportError as e:
        raise ImportError(
            f"TF Serving's gRPC API needs its protos: pip install 'genimg-serving[grpc]' ({e})") from e
    return protos


@dataclass(frozen=True)
class VersionStatus:
    """One entry of GetModelStatus: version, state name, load error (``OK`` if none)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class GrpcTransport:
    """One reused channel with raised message limits and an optional bearer token."""

    def __init__(self, target: str, *, tls: bool, root_certificates: bytes | None,
                 auth_token: str | None, max_message_bytes: int, max_reconnect_backoff: float = 2.0):
        # grpc's own reconnect backoff grows to 120 s and, while it waits, every call fails at
        # once: a restarted server would stay hidden from the client's retries. Cap it likewise.
        cap_ms = max(100, int(max_reconnect_backoff * 1000))
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.initial_reconnect_backoff_ms", min(1000, cap_ms)),
                   ("grpc.max_reconnect_backoff_ms", cap_ms)]
        if tls:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        pb = self._pb = tf_serving_protos()
        self._predict = pb.prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self._models = pb.model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._auth = (("authorization", f"Bearer {auth_token}"),) if auth_token else None

    def _rpc(self, method, request, timeout):
        try:
            return method(request, timeout=timeout, metadata=self._auth)
        except grpc.RpcError as e:
            raise error_for(e.code(), e.details() or "") from None

    def predict(self, model, inputs, *, version, label, signature, output_filter, timeout):
        from genimg_serving.tensors import to_ndarray, to_tensor_proto

        request = self._pb.predict_pb2.PredictRequest(output_filter=output_filter or [])
        _fill_spec(request.model_spec, model, version, label, signature)
        for alias, array in inputs.items():
            to_tensor_proto(array, out=request.inputs[alias])
        response = self._rpc(self._predict.Predict, request, timeout)
        outputs = {alias: to_ndarray(t) for alias, t in response.outputs.items()}
        answered = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return outputs, answered

    def metadata(self, model, *, version, label, timeout):
        request = self._pb.get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=[signatures.SIGNATURE_DEF])
        _fill_spec(request.model_spec, model, version, label)
        return signatures.from_response(self._rpc(self._predict.GetModelMetadata, request, timeout))

    def status(self, model, *, version, label, timeout):
        status_pb2 = self._pb.get_model_status_pb2
        request = status_pb2.GetModelStatusRequest()
        _fill_spec(request.model_spec, model, version, label)
        response = self._rpc(self._models.GetModelStatus, request, timeout)
        return [VersionStatus(s.version, status_pb2.ModelVersionStatus.State.Name(s.state),
                              _CODE_NAMES.get(s.status.error_code, str(s.status.error_code)),
                              s.status.error_message)
                for s in response.model_version_status]

    def close(self):
        self.channel.close()


def _fill_spec(spec, model, version, label, signature=None):
    spec.name = model
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label
    if signature:
        spec.signature_name = signature


class RestTransport:
    """TF Serving's REST API over keep-alive HTTP(S) connections (one per thread)."""

    def __init__(self, url: str, *, root_certificates: bytes | None, auth_token: str | None):
        parts = urlsplit(url)
        self.url, self.https = url.rstrip("/"), parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self._ssl = None
        if self.https:
            cadata = root_certificates.decode() if root_certificates else None
            self._ssl = ssl.create_default_context(cadata=cadata)
        self._headers = {"Content-Type": "application/json"}
        if auth_token:
            self._headers["Authorization"] = f"Bearer {auth_token}"
        self._local = threading.local()

    def _connection(self, timeout):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(self.host, self.port, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(self.host, self.port)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _request(self, method: str, path: str, body: dict | None, timeout) -> dict:
        conn = self._connection(timeout)
        data = rest_json.dumps(body) if body is not None else None
        try:
            conn.request(method, path, body=data, headers=self._headers)
            response = conn.getresponse()
            payload = response.read()
        except TimeoutError as e:
            self._drop(conn)
            raise DeadlineExceededError(f"no answer from {self.url} within {timeout} s") from e
        except (OSError, http.client.HTTPException) as e:
            self._drop(conn)
            raise UnavailableError(f"cannot reach {self.url}: {e}") from e
        try:
            doc = json.loads(payload) if payload else {}
        except ValueError:
            doc = {"error": payload.decode("utf-8", errors="replace")[:500]}
        if response.status != 200:
            message = doc.get("error", f"HTTP {response.status}") if isinstance(doc, dict) else str(doc)
            raise error_for(code_for_http(response.status), message)
        return doc

    def _drop(self, conn):
        conn.close()
        self._local.conn = None

    def _path(self, model, version, label) -> str:
        path = f"/v1/models/{quote(model, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label:
            path += f"/labels/{quote(label, safe='')}"
        return path

    def predict(self, model, inputs, *, version, label, signature, output_filter, timeout,
                output_infos):
        body = {"signature_name": signature,
                "inputs": {a: rest_json.to_json(v, as_bytes=True) for a, v in inputs.items()}}
        for alias in output_filter or []:
            if alias not in output_infos:
                raise InvalidArgumentError(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be"
                    f" in the set {{{','.join(sorted(output_infos))}}}.")
        doc = self._request("POST", self._path(model, version, label) + ":predict", body, timeout)
        values = doc.get("outputs")
        if len(output_infos) == 1:
            values = {next(iter(output_infos)): values}
        outputs = {a: _from_json(values[a], output_infos[a]) for a in output_infos if a in values}
        if output_filter:
            outputs = {a: outputs[a] for a in output_filter}
        return outputs, None

    def metadata(self, model, *, version, label, timeout):
        doc = self._request("GET", self._path(model, version, label) + "/metadata", None, timeout)
        return signatures.from_json(doc)

    def status(self, model, *, version, label, timeout):
        doc = self._request("GET", self._path(model, version, label), None, timeout)
        return [VersionStatus(int(s["version"]), s["state"], s["status"]["error_code"],
                              s["status"]["error_message"])
                for s in doc.get("model_version_status", [])]

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


def _from_json(value, info) -> np.ndarray:
    if info.dtype == "string":
        def walk(v):
            if isinstance(v, list):
                return [walk(x) for x in v]
            return base64.b64decode(v[rest_json.B64]) if rest_json.is_b64(v) else str(v).encode()
        return np.array(walk(value), dtype=object)
    return np.asarray(value, dtype=info.dtype)
