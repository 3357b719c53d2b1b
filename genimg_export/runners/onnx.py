"""ONNX runner: onnxruntime on the CPU execution provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genimg_export.errors import InvalidInputError, NotFoundError, first_line
from genimg_export.runners.base import Runner

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}


class OnnxRunner(Runner):
    """Run an ONNX file (one file per signature) with onnxruntime's CPU provider.

    Args:
        artifact: ``out/onnx/<name>.onnx`` (or ``.int8.onnx``, or
            ``<name>.<signature>.onnx`` for extra signatures).
        num_threads: intra-op threads (None: onnxruntime's default).
    """

    backend = "onnx"

    def __init__(self, artifact, spec, signature: str = "serving_default", num_threads: int | None = None):
        super().__init__(artifact, spec, signature)
        import onnxruntime as ort

        path = Path(artifact)
        if not path.is_file():
            raise NotFoundError(f"no ONNX file at {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise InvalidInputError(f"onnxruntime cannot load {path}: {first_line(e)}") from e
        # Graph input names may carry a ':0' suffix; feed by the spec's names.
        self._inputs = {i.name.split(":")[0]: i for i in self._session.get_inputs()}
        missing = [t.name for t in self.signature.inputs if t.name not in self._inputs]
        if missing:
            raise InvalidInputError(
                f"ONNX file {path} has inputs {sorted(self._inputs)}, expected"
                f" {[t.name for t in self.signature.inputs]} for {spec.name}/{self.signature.name}"
            )
        self._output_names = [o.name for o in self._session.get_outputs()]

    def _run(self, inputs):
        feeds = {}
        for name, value in inputs.items():
            node = self._inputs[name]
            feeds[node.name] = value.astype(_ORT_DTYPES.get(node.type, value.dtype), copy=False)
        values = self._session.run(self._output_names, feeds)
        return self.name_outputs(dict(zip(self._output_names, values)))

    def close(self) -> None:
        self._session = None
