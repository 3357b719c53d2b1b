"""ModelServer: the manager plus the gRPC and REST front ends, started together."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import grpc

from genimg_serving.configs import ModelConfig, read_model_config, single_model
from genimg_serving.server.batching import Batcher, BatchingOptions
from genimg_serving.server.grpc_server import start_grpc
from genimg_serving.server.manager import ModelManager
from genimg_serving.server.metrics import Metrics
from genimg_serving.server.rest_server import start_rest

log = logging.getLogger("genimg_serving")

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # a batch of 1024x1024 SR outputs fits easily
MAX_IN_FLIGHT = 32
MAX_PIXELS = 1024 * 1024  # per request, batch x H x W of an image input (srgan: a 4096x4096 output)
LOOPBACK = "127.0.0.1"


class ModelServer:
    """A local server speaking TF Serving's gRPC and REST APIs.

    Args:
        configs: the models (see ``configs.single_model`` / ``read_model_config``).
        host: interface to bind; loopback unless you mean to expose it.
        grpc_port / rest_port: 0 picks a free port; rest_port None disables REST.
        poll_seconds: how often to look for new versions (0: never).
        config_file: models.config to re-read when it changes (while polling).
        tls_cert / tls_key: PEM files; both given turns TLS on for both ports.
        auth_token: require ``authorization: Bearer <token>`` on every call.
        max_pixels: most pixels (batch x H x W) of an image input per request,
            beyond which Predict answers RESOURCE_EXHAUSTED; None: no cap.
        batching: server-side batching (TF Serving's --enable_batching), e.g.
            ``read_batching_parameters("out/serving/batching_parameters.txt")``
            or ``BatchingOptions()`` for TF Serving's defaults; None: off.
        tensor_content: write Predict replies' numbers as ``tensor_content``
            (TF Serving's --enable_serialization_as_tensor_content); by default
            they go in the typed fields (``float_val`` ...), as TF Serving's do.

    Example:
        >>> with ModelServer(single_model("srgan", "out/serving/srgan"), grpc_port=0) as s:
        ...     Client(f"127.0.0.1:{s.grpc_port}").predict("srgan", {"lr": x})
    """

    def __init__(self, configs: list[ModelConfig], *, host: str = LOOPBACK, grpc_port: int = 8500,
                 rest_port: int | None = 8501, poll_seconds: float = 1.0,
                 config_file: Path | None = None, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 max_in_flight: int = MAX_IN_FLIGHT, tls_cert=None, tls_key=None,
                 auth_token: str | None = None, warmup: bool = True, max_pixels: int | None = MAX_PIXELS,
                 batching: BatchingOptions | None = None, tensor_content: bool = False):
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
        self.host, self.poll_seconds, self.config_file = host, poll_seconds, config_file
        self.options = dict(max_message_bytes=max_message_bytes, max_in_flight=max_in_flight,
                            auth_token=auth_token)
        self.tls = (Path(tls_cert), Path(tls_key)) if tls_cert else None
        self._ports = (grpc_port, rest_port)
        self.manager = ModelManager(configs, warmup=warmup, max_pixels=max_pixels,
                                    batcher=Batcher(batching) if batching else None,
                                    tensor_content=tensor_content)
        self.metrics = Metrics(self.manager.batcher)
        self.grpc_port = self.rest_port = None
        self._grpc = self._rest = None

    @classmethod
    def from_flags(cls, model_name=None, model_base_path=None, model_config_file=None, **kw):
        """Build from the CLI's --model-name/--model-base-path or --model-config-file."""
        if model_config_file:
            path = Path(model_config_file)
            return cls(read_model_config(path), config_file=path, **kw)
        return cls(single_model(model_name, model_base_path), **kw)

    def start(self) -> ModelServer:
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # TF1 SavedModels warn about ref variables
        if self.manager.batcher is not None:
            self.manager.batcher.start()
        self.manager.poll()
        grpc_port, rest_port = self._ports
        opts = self.options
        creds, ctx = self._tls()
        try:
            self._grpc, self.grpc_port = start_grpc(
                self.manager, self.metrics, self.host, grpc_port, credentials=creds, **opts)
            if rest_port is not None:
                self._rest, self.rest_port = start_rest(
                    self.manager, self.metrics, self.host, rest_port,
                    max_body_bytes=opts["max_message_bytes"],
                    max_in_flight=opts["max_in_flight"], ssl_context=ctx,
                    auth_token=opts["auth_token"])
        except OSError:
            self.stop()
            raise
        self.manager.start_polling(self.poll_seconds, self.config_file)
        return self

    def _tls(self):
        if self.tls is None:
            return None, None
        cert, key = (p.read_bytes() for p in self.tls)
        creds = grpc.ssl_server_credentials([(key, cert)])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
        return creds, ctx

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let in-flight ones finish (up to ``grace`` s)."""
        self.manager.stop()
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
            self._grpc = None
        if self.manager.batcher is not None:
            self.manager.batcher.stop()

    def wait(self) -> None:
        """Block until the gRPC server stops (Ctrl-C in the CLI)."""
        if self._grpc is not None:
            self._grpc.wait_for_termination()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def batching(self) -> BatchingOptions | None:
        """The batching options in force, or None when batching is off."""
        return self.manager.batcher.options if self.manager.batcher is not None else None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.rest_port}"
