"""Load a user's or the zoo's ``.keras`` file safely (the one place that calls
``keras.saving.load_model``), with errors that say what to do."""

from __future__ import annotations

import zipfile
from pathlib import Path

from genimg_export.errors import InvalidInputError, NotFoundError, first_line

UNSAFE_FLAG = "--allow-unsafe-deserialization"


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
        raise InvalidInputError(f"cannot load {path}: {first_line(e)}") from e
    except Exception as e:  # zip, h5 and config errors come in many types
        raise InvalidInputError(
            f"cannot load {path}: not a valid .keras file ({first_line(e)})"
        ) from e
