"""SavedModel runner: ``tf.saved_model.load`` and one of its serving signatures."""

from __future__ import annotations

from pathlib import Path

from genimg_export.errors import NotFoundError, did_you_mean
from genimg_export.runners.base import Runner


class SavedModelRunner(Runner):
    """Run a SavedModel signature by name, as TF Serving would.

    Args:
        artifact: the version directory (``out/serving/<name>/<version>``).
    """

    backend = "saved_model"

    def __init__(self, artifact, spec, signature: str = "serving_default"):
        super().__init__(artifact, spec, signature)
        import tensorflow as tf

        path = Path(artifact)
        if not (path / "saved_model.pb").exists():
            raise NotFoundError(f"no SavedModel at {path} (expected {path}/saved_model.pb)")
        self._tf = tf
        self._loaded = tf.saved_model.load(str(path))
        found = list(self._loaded.signatures.keys())
        if self.signature.name not in found:
            raise NotFoundError(
                f"SavedModel {path} has no signature '{self.signature.name}'"
                f"{did_you_mean(self.signature.name, found)}; it has: {', '.join(found)}"
            )
        self._fn = self._loaded.signatures[self.signature.name]

    def _run(self, inputs):
        feeds = {name: self._tf.constant(value) for name, value in inputs.items()}
        return self.name_outputs({k: v.numpy() for k, v in self._fn(**feeds).items()})

    def close(self) -> None:
        self._fn = self._loaded = None
