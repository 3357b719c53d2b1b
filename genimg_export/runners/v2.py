"""v2 runner: an ONNX model served over KServe's Open Inference Protocol (Triton, KServe).

The artifact is the server's address: ``HOST:PORT`` or ``grpc://HOST:PORT`` for gRPC
(Triton's 8001), ``http(s)://HOST:PORT`` for HTTP (8000). Names and dtypes come from
the server's model metadata, read by the client.
"""

from __future__ import annotations

from genimg_export.runners.grpc import GrpcRunner


class V2Runner(GrpcRunner):
    """Run the model through ``ModelInfer`` (gRPC) or ``POST /v2/models/<name>/infer`` (HTTP).

    Args:
        artifact: the server's address (see the module docstring).
        model_name: the name Triton knows the model by (default: spec.name; the int8
            file is ``<name>_int8`` in the repository ``genimg-export triton`` writes).
        version: pin a version (default: the server's choice, the latest).
    """

    backend = "v2"

    def __init__(self, artifact, spec, signature: str = "serving_default", model_name=None,
                 version=None, timeout: float = 60.0, tls: bool = False, auth_token=None, **_):
        from genimg_serving.client import Client

        super(GrpcRunner, self).__init__(artifact, spec, signature)
        self.model_name = model_name or spec.name
        self.version, self.label = version, None
        self.client = Client(str(artifact), timeout=timeout, tls=tls, auth_token=auth_token, protocol="v2")
