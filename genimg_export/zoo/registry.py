"""The zoo registry: zoo modules register their ModelSpec where it is defined."""

from __future__ import annotations

import importlib

from genimg_export.errors import NotFoundError, did_you_mean
from genimg_export.zoo.spec import ModelSpec

# Every module in genimg_export/zoo that defines a model. tests/test_zoo.py
# fails if a model module exists but is missing here or does not register.
ZOO_MODULES = ("dcgan", "vae", "cgan", "srgan", "style", "pix2pix")

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec to the zoo; called at import time by its own module."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model '{spec.name}' registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    for module in ZOO_MODULES:
        importlib.import_module(f"genimg_export.zoo.{module}")


def names() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def get(name: str) -> ModelSpec:
    """The zoo spec called ``name``, in any case (``SRGAN`` is srgan); a NotFoundError
    suggests the nearest name."""
    _load_all()
    try:
        return _REGISTRY[name] if name in _REGISTRY else _REGISTRY[name.lower()]
    except KeyError:
        raise NotFoundError(
            f"unknown model '{name}'{did_you_mean(name, _REGISTRY)};"
            f" the zoo has: {', '.join(_REGISTRY)} (or pass a path to a .keras file"
            " or SavedModel directory)"
        ) from None
