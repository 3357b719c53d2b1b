"""Turn ``--model NAME|PATH`` and ``--weights`` into a spec and a Keras model."""

from __future__ import annotations

from pathlib import Path

from genimg_export.errors import NotFoundError
from genimg_export.zoo import registry
from genimg_export.zoo.keras_file import import_custom_objects, load_keras
from genimg_export.zoo.spec import ModelSpec


def looks_like_path(model: str) -> bool:
    return model.endswith(".keras") or "/" in model or "\\" in model or Path(model).exists()


def get_spec(model: str, allow_unsafe: bool = False, custom_objects: list[str] | None = None) -> ModelSpec:
    """A zoo spec by name, or a spec read from a user's .keras file / SavedModel.

    ``custom_objects``: files or modules to import first (they register the
    model's custom layers); recorded in a user spec's ``extra["custom_objects"]``.
    """
    for ref in custom_objects or []:
        import_custom_objects(ref)
    if not looks_like_path(model):
        return registry.get(model)
    from genimg_export.zoo import user

    return user.spec_from_path(Path(model), allow_unsafe=allow_unsafe)


def load_model(spec: ModelSpec, weights: str | Path | None = None, allow_unsafe: bool = False):
    """The Keras model for a spec: ``weights`` if given, else the shipped/user file."""
    if weights is not None:
        return load_keras(Path(weights), allow_unsafe)
    if spec.source is not None:
        return spec.extra.get("model") or load_keras(spec.source, allow_unsafe)
    if not spec.weights_path.exists():
        raise NotFoundError(
            f"model '{spec.name}' has no shipped weights at {spec.weights_path};"
            f" train them with: genimg-export train --model {spec.name} --out DIR"
        )
    return load_keras(spec.weights_path)
