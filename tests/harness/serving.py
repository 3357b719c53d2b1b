"""Helpers for the serving tests: tiny SavedModels and servers (TF Serving's own test
models and their twins are in ``tfserving_twins``).

(A harness module, not conftest: ``from conftest import`` is ambiguous when
pytest collects tests/ and serving/tests/ in one run.)
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def write_affine(path: Path, scale: float, offset: float, channels: int = 3) -> Path:
    """A SavedModel computing y = x * scale + offset on NHWC images, written atomically."""
    import tensorflow as tf

    class Affine(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * scale + offset}

    module = Affine()
    tmp = path.with_name(f".tmp-{path.name}")
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    os.rename(tmp, path)  # a server never sees half a version
    return path


def start_server(configs, **kw):
    """A ModelServer on loopback with OS-picked ports and no polling, started."""
    from genimg_serving.server import ModelServer

    kw.setdefault("grpc_port", 0)
    kw.setdefault("rest_port", 0)
    kw.setdefault("poll_seconds", 0)
    return ModelServer(configs, **kw).start()


def free_ports(n: int = 1) -> list[int]:
    """n distinct free loopback ports (all bound at once, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
