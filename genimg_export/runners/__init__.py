"""Runners: one interface over every backend an exported model runs on.

A runner loads one artifact (or connects to one server) and computes one
signature of the model: ``run(inputs: dict[str, ndarray]) -> dict[str, ndarray]``
keyed by the spec's tensor names; ``close()`` frees it. Parity, bench, serve
and edge all go through runners.

Example:
    >>> from genimg_export.runners import open_runner
    >>> with open_runner("tflite", "out/tflite/srgan.int8.tflite", spec, num_threads=2) as r:
    ...     hr = r.run({"lr": lr})["hr"]

Adding a backend is one row here and one module; modules are imported only
when their backend is opened, so listing the table costs nothing.
"""

from __future__ import annotations

import importlib

from genimg_export.errors import InvalidInputError, did_you_mean
from genimg_export.runners.base import Runner

# backend -> "module:Class". grpc and rest connect to a server (the artifact is
# a HOST:PORT target); the others load a file or directory.
BACKENDS: dict[str, str] = {
    "keras": "genimg_export.runners.keras:KerasRunner",
    "saved_model": "genimg_export.runners.saved_model:SavedModelRunner",
    "tflite": "genimg_export.runners.tflite:TFLiteRunner",
    "onnx": "genimg_export.runners.onnx:OnnxRunner",
    "grpc": "genimg_export.runners.grpc:GrpcRunner",
    "rest": "genimg_export.runners.rest:RestRunner",
    "v2": "genimg_export.runners.v2:V2Runner",
}
SERVER_BACKENDS = ("grpc", "rest", "v2")

__all__ = ["BACKENDS", "SERVER_BACKENDS", "Runner", "open_runner", "runner_class"]


def runner_class(backend: str) -> type[Runner]:
    """The runner class of ``backend`` (imported on first use)."""
    if backend not in BACKENDS:
        raise InvalidInputError(
            f"unknown backend '{backend}'{did_you_mean(backend, BACKENDS)};"
            f" choose from: {', '.join(BACKENDS)}"
        )
    module, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), cls)


def open_runner(backend: str, artifact, spec, signature: str = "serving_default", **options) -> Runner:
    """Open ``artifact`` (a path, or HOST:PORT for grpc/rest) with ``backend``'s runner.

    Args:
        backend: a key of BACKENDS, e.g. "tflite".
        artifact: file or directory for local backends (None for keras means the
            spec's own model), a target such as "localhost:8500" for servers.
        spec: the ModelSpec; names, dtypes and shapes are read from it.
        signature: which signature of the model to run.
        options: backend options, e.g. ``num_threads`` (tflite, onnx) or
            ``model`` (keras: an already loaded Keras model).
    """
    return runner_class(backend)(artifact, spec, signature=signature, **options)
