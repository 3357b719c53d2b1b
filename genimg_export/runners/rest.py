"""REST runner: the same as the gRPC runner over TF Serving's REST API (port 8501)."""

from __future__ import annotations

from genimg_export.runners.grpc import GrpcRunner


class RestRunner(GrpcRunner):
    """Run a signature through ``POST /v1/models/<name>:predict``.

    Args:
        artifact: ``HOST:PORT`` (http assumed) or an ``http(s)://`` URL.
    """

    backend = "rest"

    @staticmethod
    def target(artifact: str) -> str:
        return artifact if artifact.startswith(("http://", "https://")) else f"http://{artifact}"
