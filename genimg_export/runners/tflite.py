"""TFLite runner: the on-device runner of ``genimg_edge``, behind the runner interface.

``genimg_edge.model.EdgeModel`` already does what LiteRT leaves to the caller
(int8/uint8 I/O through scale and zero point, batch fixed at 1 run sample by
sample, refusing sizes a fixed-size export was not made for, dynamic H x W via
the signature runner), so parity checks exactly the code a device runs.
"""

from __future__ import annotations

from pathlib import Path

from genimg_export.errors import InvalidInputError, NotFoundError
from genimg_export.runners.base import Runner


class TFLiteRunner(Runner):
    """Run one signature of a .tflite file with ai-edge-litert.

    Args:
        artifact: ``out/tflite/<name>.<variant>.tflite``.
        num_threads: interpreter threads (XNNPACK is single-threaded unless set).
    """

    backend = "tflite"

    def __init__(self, artifact, spec, signature: str = "serving_default", num_threads: int | None = None):
        super().__init__(artifact, spec, signature)
        from genimg_edge.errors import EdgeError
        from genimg_edge.model import EdgeModel

        self._edge_error = EdgeError
        path = Path(artifact)
        if not path.is_file():
            raise NotFoundError(f"no TFLite file at {path}")
        try:
            self._model = EdgeModel.load(path, num_threads=num_threads)
            found = self._model.signatures
        except EdgeError as e:
            raise InvalidInputError(str(e)) from e
        if self.signature.name not in found:
            raise NotFoundError(
                f"TFLite file {path} has no signature '{self.signature.name}';"
                f" it has: {', '.join(found) or 'none'}"
            )

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(H, W) the file was exported at, from its embedded metadata; None if dynamic."""
        return self._model.fixed_size

    def _run(self, inputs):
        try:
            return self.name_outputs(self._model.run(inputs, self.signature.name))
        except self._edge_error as e:
            raise InvalidInputError(f"{self.artifact}: {e}") from e

    def close(self) -> None:
        self._model = None
