"""Rebuild a Keras model under a dtype policy, for the reduced-precision SavedModels.

A layer's dtype policy is part of its config, so setting the global policy does
not change a built model; each layer is rebuilt from its config with the policy
the format table gives (``Variant.compute_dtype``: "bfloat16" keeps variables
and compute in bfloat16, "mixed_float16" keeps float32 variables and computes
in float16) and the trained weights are copied in (cast on assignment). Keras
layers cast float inputs to their compute dtype, so the signature still takes
float32; the exporter casts the outputs back to float32 (``float32_outputs``),
so clients do not change.
"""

from __future__ import annotations

from genimg_export.errors import ExportError


def under_policy(model, policy: str):
    """A copy of the functional/sequential ``model`` whose layers all run under ``policy``.

    Raises ExportError for a model that cannot be rebuilt from its config (a loaded
    SavedModel, a subclassed model without ``get_config``).
    """
    import keras

    if hasattr(model, "trackable") or not isinstance(model, keras.Model):
        raise ExportError(
            f"a {policy} SavedModel is rebuilt from the Keras model's layers; {type(model).__name__} is not a"
            " Keras functional or Sequential model (export the .keras file, not a SavedModel)"
        )

    def rebuild(layer):
        if isinstance(layer, keras.Model):  # nested models (a VAE's encoder) are rebuilt layer by layer too
            return keras.models.clone_model(layer, clone_function=rebuild)
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    try:
        copy = keras.models.clone_model(model, clone_function=rebuild)
        copy.set_weights(model.get_weights())
    except Exception as e:  # clone_model fails with many types on unusual models
        raise ExportError(f"cannot rebuild '{model.name}' under the {policy} dtype policy: {e}") from e
    return copy


def float32_outputs(outputs: dict) -> dict:
    """``outputs`` with every float tensor cast to float32 (the signature's promise)."""
    import tensorflow as tf

    return {k: tf.cast(v, tf.float32) if v.dtype.is_floating else v for k, v in outputs.items()}
