"""The Keras reference runner: the model itself, in inference mode."""

from __future__ import annotations

import numpy as np

from genimg_export.runners.base import Runner


class KerasRunner(Runner):
    """Run a signature on the Keras model.

    Args:
        artifact: a .keras file, or None for the spec's own model (shipped
            weights, or the user's file).
        model: an already loaded Keras model; takes precedence over ``artifact``.
    """

    backend = "keras"

    def __init__(self, artifact, spec, signature: str = "serving_default", model=None):
        super().__init__(artifact, spec, signature)
        if model is None:
            from genimg_export.zoo import loading

            model = loading.load_model(spec, artifact)
        self.model = model

    def _run(self, inputs):
        outputs = self.signature.call(self.model, inputs, training=False)
        return {name: np.asarray(value) for name, value in outputs.items()}
