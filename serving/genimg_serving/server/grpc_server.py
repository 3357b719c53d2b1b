"""The gRPC front end: PredictionService and ModelService over grpcio."""

from __future__ import annotations

import functools
import hmac
import logging
from concurrent import futures

import grpc

from genimg_serving.errors import ServingError
from genimg_serving.protos import (
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from genimg_serving.server import handlers, inference

log = logging.getLogger("genimg_serving")


def _rpc(fn):
    """Run a handler; a ServingError becomes its status with the message kept."""

    @functools.wraps(fn)
    def wrapper(self, request, context):
        try:
            return fn(self, request, context)
        except ServingError as e:
            context.abort(e.code, e.message)
        except Exception as e:  # a bug: keep serving, report INTERNAL
            log.exception("%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager, metrics):
        self.manager, self.metrics = manager, metrics

    @_rpc
    def Predict(self, request, context):
        with self.metrics.track(request.model_spec.name, "Predict"):
            return handlers.predict(self.manager, request)

    @_rpc
    def GetModelMetadata(self, request, context):
        with self.metrics.track(request.model_spec.name, "GetModelMetadata"):
            return handlers.get_model_metadata(self.manager, request)

    @_rpc
    def Classify(self, request, context):
        with self.metrics.track(request.model_spec.name, "Classify"):
            return inference.classify(self.manager, request)

    @_rpc
    def Regress(self, request, context):
        with self.metrics.track(request.model_spec.name, "Regress"):
            return inference.regress(self.manager, request)

    @_rpc
    def MultiInference(self, request, context):
        name = request.tasks[0].model_spec.name if request.tasks else ""
        with self.metrics.track(name, "MultiInference"):
            return inference.multi_inference(self.manager, request)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager):
        self.manager = manager

    @_rpc
    def GetModelStatus(self, request, context):
        return handlers.get_model_status(self.manager, request)

    @_rpc
    def HandleReloadConfigRequest(self, request, context):
        from google.protobuf import text_format

        from genimg_serving.configs import ConfigError, parse_model_config
        from genimg_serving.errors import InvalidArgumentError

        text = text_format.MessageToString(request.config)
        try:
            configs = parse_model_config(text, "ReloadConfigRequest")
            self.manager.check_labels(configs)
            self.manager.set_configs(configs)
        except ConfigError as e:
            raise InvalidArgumentError(str(e)) from e
        return model_management_pb2.ReloadConfigResponse()


class BearerAuth(grpc.ServerInterceptor):
    """UNAUTHENTICATED unless ``authorization: Bearer <token>`` is sent."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, details):
        sent = dict(details.invocation_metadata).get("authorization", "")
        if hmac.compare_digest(sent.encode(), self._expected):
            return continuation(details)
        return self._deny


def start_grpc(manager, metrics, host: str, port: int, *, max_message_bytes: int,
               max_in_flight: int, credentials=None, auth_token: str | None = None):
    """Start the gRPC server; returns (server, bound port).

    ``max_in_flight`` bounds concurrent RPCs: beyond it grpcio answers
    RESOURCE_EXHAUSTED at once instead of queueing without limit.
    """
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # a busy port is an error, not a silent share
    ]
    interceptors = [BearerAuth(auth_token)] if auth_token else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="genimg-grpc"),
        options=options,
        interceptors=interceptors,
        maximum_concurrent_rpcs=max_in_flight,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    address = f"{host}:{port}"
    try:
        bound = (server.add_secure_port(address, credentials) if credentials
                 else server.add_insecure_port(address))
    except RuntimeError as e:
        raise OSError(f"cannot listen for gRPC on {address}: {e}") from e
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {address} (port in use?)")
    server.start()
    return server, bound
