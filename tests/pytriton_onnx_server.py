"""Serve ONNX files through a real Triton server (nvidia-pytriton's bundled tritonserver).

Run in a venv with nvidia-pytriton and onnxruntime (pytriton needs numpy<2, so not the
project's venv); tests/test_triton_live.py builds one. Each file becomes a Triton model
whose Python callable runs onnxruntime; Triton speaks the real v2 protocol (HTTP + gRPC).

    python pytriton_onnx_server.py HTTP_PORT GRPC_PORT METRICS_PORT NAME=FILE.onnx [NAME=FILE.onnx ...]

Prints "READY" when every model is loaded, then serves until killed.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def bind(triton, name: str, path: str) -> None:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def tensors(values):
        return [Tensor(name=v.name, dtype=_numpy(v.type), shape=tuple(-1 if not isinstance(d, int) else d
                                                                          for d in v.shape[1:]))
                for v in values]

    @batch
    def infer(**inputs):
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, inputs)))

    triton.bind(model_name=name, infer_func=infer, inputs=tensors(session.get_inputs()),
                outputs=tensors(session.get_outputs()), config=ModelConfig(max_batch_size=8))


def _numpy(onnx_type: str):
    return {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}[onnx_type]


def main() -> None:
    http_port, grpc_port, metrics_port, *models = sys.argv[1:]
    config = TritonConfig(http_port=int(http_port), grpc_port=int(grpc_port), metrics_port=int(metrics_port),
                          http_address="127.0.0.1", grpc_address="127.0.0.1")
    with Triton(config=config) as triton:
        for entry in models:
            name, path = entry.split("=", 1)
            bind(triton, name, path)
        triton.run()
        print("READY", flush=True)
        while triton.is_alive():  # serve() would start the server a second time
            time.sleep(1)


if __name__ == "__main__":
    main()
