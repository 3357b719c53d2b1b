"""TF Serving's generated protos, imported without starting TensorFlow.

``tensorflow_serving.apis`` imports ``tensorflow.core.framework.tensor_pb2``
and friends; importing any of those the normal way runs ``tensorflow/__init__``,
which takes seconds and loads the whole runtime. A client needs only the
message classes. When TensorFlow is not imported yet, we put bare package
modules for ``tensorflow``, ``tensorflow.core`` ... in ``sys.modules`` whose
``__path__`` points at the installed files, import the ``*_pb2`` modules, and
remove the bare packages again. The ``*_pb2`` modules stay registered, so a
later ``import tensorflow`` finds and reuses them (same classes, same
descriptor pool). When TensorFlow is already imported this is a plain import.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

_PACKAGES = (
    "tensorflow", "tensorflow.core", "tensorflow.core.framework",
    "tensorflow.core.protobuf", "tensorflow.core.example",
)


def _bare_packages() -> list[str]:
    if "tensorflow" in sys.modules:
        return []
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        return []  # no TensorFlow: let the normal import fail with its own message
    root = os.path.dirname(spec.origin)
    added = []
    for name in _PACKAGES:
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [os.path.join(root, *name.split(".")[1:])]
            sys.modules[name] = module
            added.append(name)
    return added


_added = _bare_packages()
try:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
    from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402
    from tensorflow_serving.apis import (  # noqa: E402
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        inference_pb2,
        model_management_pb2,
        model_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_log_pb2,
        prediction_service_pb2_grpc,
        regression_pb2,
    )
    from tensorflow_serving.config import model_server_config_pb2  # noqa: E402
finally:
    # Drop the bare packages and any plain (non-*_pb2) package imported under
    # them, so that a later ``import tensorflow`` builds those for real.
    if _added:
        for _name in [n for n in sys.modules if n.split(".")[0] == "tensorflow"]:
            if not _name.endswith("_pb2"):
                del sys.modules[_name]

__all__ = [
    "classification_pb2", "get_model_metadata_pb2", "get_model_status_pb2",
    "inference_pb2", "meta_graph_pb2",
    "model_management_pb2", "model_pb2", "model_service_pb2_grpc", "model_server_config_pb2",
    "predict_pb2", "prediction_log_pb2", "prediction_service_pb2_grpc", "regression_pb2",
    "tensor_pb2", "tensor_shape_pb2", "types_pb2",
]
