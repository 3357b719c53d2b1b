"""Load a user's or the zoo's ``.keras`` file safely (the one place that calls
``keras.saving.load_model``), with errors that say what to do.

A file with custom layers loads once the module that registers them
(``@keras.saving.register_keras_serializable``) is imported:
``import_custom_objects("my_layers.py")`` (a file) or ``("my_pkg.layers")``
(an importable module), which ``--custom-objects`` calls. Safe mode stays on.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import zipfile
from pathlib import Path

from genimg_export.errors import InvalidInputError, NotFoundError, first_line

UNSAFE_FLAG = "--allow-unsafe-deserialization"
CUSTOM_FLAG = "--custom-objects"
_IMPORTED: dict[str, str] = {}  # what was given -> what was imported (a resolved path or a module name)


def import_custom_objects(ref: str | Path) -> str:
    """Import the file or module ``ref`` that registers custom layers; return what was
    imported (recorded in a user spec's ``extra["custom_objects"]``). Importing the
    same file twice runs it once."""
    ref = str(ref)
    path = Path(ref)
    if ref.endswith(".py") or path.exists():
        if not path.is_file():
            raise NotFoundError(f"{CUSTOM_FLAG} {ref}: no such file (expected e.g. my_layers.py or a module name)")
        key = str(path.resolve())
        if key not in _IMPORTED.values():
            _exec_file(path, ref)
    else:
        key = ref
        try:
            importlib.import_module(ref)
        except Exception as e:
            raise InvalidInputError(
                f"{CUSTOM_FLAG} {ref}: cannot import it ({type(e).__name__}: {first_line(e)})") from e
    _IMPORTED[ref] = key
    return key


def _exec_file(path: Path, ref: str) -> None:
    name = "genimg_custom_" + re.sub(r"\W", "_", path.resolve().with_suffix("").as_posix())
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise InvalidInputError(f"{CUSTOM_FLAG} {ref}: running it failed ({type(e).__name__}: {first_line(e)})") from e


def imported_custom_objects() -> list[str]:
    """Every file or module imported by ``import_custom_objects`` in this process."""
    return list(dict.fromkeys(_IMPORTED.values()))


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
    except Exception as e:  # zip, h5 and config errors come in many types
        raise _load_error(path, e) from e


def _load_error(path: Path, e: Exception) -> InvalidInputError:
    text = str(e)
    missing = re.search(r"(?:Could not locate|Unknown) (?:class|layer|function)[: ]+'?([A-Za-z0-9_>.]+)", text)
    if missing:
        return InvalidInputError(
            f"cannot load {path}: it uses the custom class '{missing.group(1)}', which no imported module"
            f" registers; pass {CUSTOM_FLAG} my_layers.py (the file or module that defines it with"
            " @keras.saving.register_keras_serializable)"
        )
    if isinstance(e, ValueError):
        if "unsafe" in text.lower() or "lambda" in text.lower():
            return InvalidInputError(
                f"{path} needs unsafe deserialization (it contains a Lambda layer or"
                f" other Python code); pass {UNSAFE_FLAG} only if you trust the file"
            )
        return InvalidInputError(f"cannot load {path}: {first_line(e)}")
    return InvalidInputError(f"cannot load {path}: not a valid .keras file ({first_line(e)})")
