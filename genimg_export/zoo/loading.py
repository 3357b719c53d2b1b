"""Turn ``--model NAME|PATH`` and ``--weights`` into a spec and a Keras model."""

from __future__ import annotations

import zipfile
from pathlib import Path

from genimg_export.errors import InvalidInputError, NotFoundError
from genimg_export.zoo import registry
from genimg_export.zoo.spec import ModelSpec

UNSAFE_FLAG = "--allow-unsafe-deserialization"


def looks_like_path(model: str) -> bool:
    return model.endswith(".keras") or "/" in model or "\\" in model or Path(model).exists()


def get_spec(model: str, allow_unsafe: bool = False) -> ModelSpec:
    """A zoo spec by name, or a spec read from a user's .keras file / SavedModel."""
    if not looks_like_path(model):
        return registry.get(model)
    from genimg_export.zoo import user

    return user.spec_from_path(Path(model), allow_unsafe=allow_unsafe)


def load_keras(path: Path, allow_unsafe: bool = False):
    """Load a .keras file in safe mode; refuse unsafe ones unless allowed."""
    import keras

    from genimg_export.zoo import layers  # noqa: F401  (registers custom layers)

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no such model file: {path}")
    if path.suffix != ".keras":
        raise InvalidInputError(
            f"{path} is not a .keras file (expected e.g. model.keras, written by"
            f" model.save('model.keras'))"
        )
    if not zipfile.is_zipfile(path):
        raise InvalidInputError(f"cannot load {path}: not a valid .keras file (not a zip archive; truncated?)")
    try:
        return keras.saving.load_model(path, safe_mode=not allow_unsafe, compile=False)
    except ValueError as e:
        if "unsafe" in str(e).lower() or "lambda" in str(e).lower():
            raise InvalidInputError(
                f"{path} needs unsafe deserialization (it contains a Lambda layer or"
                f" other Python code); pass {UNSAFE_FLAG} only if you trust the file"
            ) from e
        raise InvalidInputError(f"cannot load {path}: {_first_line(e)}") from e
    except Exception as e:  # zip, h5 and config errors come in many types
        raise InvalidInputError(
            f"cannot load {path}: not a valid .keras file ({_first_line(e)})"
        ) from e


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


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
