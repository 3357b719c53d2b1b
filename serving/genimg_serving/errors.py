"""Errors carrying a gRPC status code and the server's own message.

The server raises these inside request handlers (the gRPC layer turns them
into a status, the REST layer into an HTTP code and ``{"error": ...}``); the
client raises the same classes for a failed call, so application code catches
``NotFoundError`` whichever transport it used.
"""

from __future__ import annotations

import grpc

# TF Serving's mapping of status codes to HTTP codes (model_servers/http_server.cc).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A failed serving call: ``code`` (grpc.StatusCode) and the server's ``message``."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgumentError(ServingError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ServingError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPreconditionError(ServingError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(ServingError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(ServingError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhaustedError(ServingError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnauthenticatedError(ServingError):
    code = grpc.StatusCode.UNAUTHENTICATED


class UnimplementedError(ServingError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(ServingError):
    code = grpc.StatusCode.INTERNAL


_CLASSES = {
    cls.code: cls
    for cls in (
        InvalidArgumentError, NotFoundError, FailedPreconditionError, UnavailableError,
        DeadlineExceededError, ResourceExhaustedError, UnauthenticatedError,
        UnimplementedError, InternalError,
    )
}


def error_for(code: grpc.StatusCode | int, message: str) -> ServingError:
    """The most specific ServingError for a status code (gRPC enum or its number)."""
    if isinstance(code, int):
        code = _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    cls = _CLASSES.get(code, ServingError)
    return cls(message, code)


def code_for_http(status: int) -> grpc.StatusCode:
    """The status code a REST reply's HTTP status stands for (first match wins)."""
    for code, http in HTTP_STATUS.items():
        if http == status:
            return code
    return grpc.StatusCode.UNKNOWN
