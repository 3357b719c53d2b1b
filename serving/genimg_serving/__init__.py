"""genimg-serving: client for TensorFlow Serving and a local TF-Serving-compatible server.

``from genimg_serving import Client`` for production apps; the server lives
in ``genimg_serving.server`` (it imports TensorFlow, the client does not).
"""

from genimg_serving.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    ServingError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "Client", "DeadlineExceededError", "FailedPreconditionError", "InvalidArgumentError",
    "NotFoundError", "ResourceExhaustedError", "ServingError", "UnauthenticatedError",
    "UnavailableError",
]


def __getattr__(name):  # Client imports grpc and the protos: only when asked for
    if name == "Client":
        from genimg_serving.client import Client

        return Client
    raise AttributeError(name)
