"""gRPC runner: a model served by TF Serving (or ``genimg-export serve``).

The artifact is the server's ``HOST:PORT``; input and output names come from
the spec, and the served model's own metadata is read by the client (dtype
casts, output names), so nothing is hard-coded here.
"""

from __future__ import annotations

from genimg_export.errors import GenimgError, InvalidInputError, NotFoundError
from genimg_export.runners.base import Runner


class GrpcRunner(Runner):
    """Run a signature through a server's Predict API.

    Args:
        artifact: ``HOST:PORT`` of the gRPC endpoint (8500 by default).
        model_name: the name the server knows the model by (default: spec.name).
        version / label: pin a version number or label (default: latest).
        timeout, tls, root_certificates, auth_token: passed to the Client.
    """

    backend = "grpc"

    def __init__(self, artifact, spec, signature: str = "serving_default", model_name=None,
                 version=None, label=None, timeout: float = 60.0, tls: bool = False,
                 root_certificates=None, auth_token=None):
        super().__init__(artifact, spec, signature)
        from genimg_serving.client import Client

        self.model_name = model_name or spec.name
        self.version, self.label = version, label
        self.client = Client(self.target(str(artifact)), timeout=timeout, tls=tls,
                             root_certificates=root_certificates, auth_token=auth_token)

    @staticmethod
    def target(artifact: str) -> str:
        return artifact

    def _run(self, inputs):
        from genimg_serving.errors import ServingError

        try:
            outputs = self.client.predict(self.model_name, inputs, signature=self.signature.name,
                                          version=self.version, label=self.label)
        except ServingError as e:
            raise serving_error(e, self.client.target) from e
        return self.name_outputs(outputs)

    def close(self) -> None:
        self.client.close()


def serving_error(e, target: str) -> GenimgError:
    """A server's error as the toolchain's: one line keeping the server's message."""
    import grpc

    code = e.code
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFoundError(f"{target}: {e.message}")
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return InvalidInputError(f"{target}: {e.message}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return GenimgError(
            f"no answer from {target} ({code.name}: {e.message}); is a server running there?"
            " (start one with: genimg-export serve --model-name NAME --model-base-path DIR)")
    return GenimgError(f"{target}: {code.name}: {e.message}")
