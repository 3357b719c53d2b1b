"""ModelSpec: everything the toolchain knows about one model, defined once.

A zoo module builds a ModelSpec and registers it; a user's own ``.keras`` file
or SavedModel becomes one too (see ``zoo.user``). Exporters, runners, parity,
bench and serving all read names, shapes, ranges and tolerances from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from genimg_export.artifacts.formats import FP32, Tolerance, default_tolerances

__all__ = ["FP32", "STANDARD_TOLERANCES", "ModelSpec", "Signature", "TensorSpec", "Tolerance", "tolerances"]

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output, without the batch dimension.

    ``shape`` uses ``None`` for dynamic dims (H and W of fully convolutional
    models); the batch dim is always dynamic. ``value_range`` is the range the
    values are meant to lie in (images are [-1, 1]), or None for labels/latents.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    value_range: tuple[float, float] | None = None
    description: str = ""

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3 and self.shape[-1] in (1, 3)

    @property
    def dynamic_spatial(self) -> bool:
        return self.is_image and (self.shape[0] is None or self.shape[1] is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": [None, *self.shape],
            "value_range": list(self.value_range) if self.value_range else None,
            "description": self.description,
        }


@dataclass(frozen=True)
class Signature:
    """A callable endpoint of the model (TF Serving signature).

    ``submodel`` names a nested Keras model (layer) that implements it, or None
    for the whole model. Inputs and outputs are in the (sub)model's order.
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    submodel: str | None = None

    def keras_callable(self, model):
        return model if self.submodel is None else model.get_layer(self.submodel)

    def call(self, model, inputs: Inputs, training: bool = False) -> dict[str, Any]:
        """Run the Keras (sub)model on a dict of inputs; return a dict of outputs."""
        fn = self.keras_callable(model)
        args = [inputs[t.name] for t in self.inputs]
        out = fn(args if len(args) > 1 else args[0], training=training)
        if not isinstance(out, (list, tuple)):
            out = [out]
        return {t.name: o for t, o in zip(self.outputs, out)}


# The house starting points live in the format table, one per variant; specs start
# from them explicitly and may tighten them, or loosen with a written reason.
STANDARD_TOLERANCES: dict[tuple[str, str], Tolerance] = default_tolerances()


def tolerances(**overrides: Tolerance) -> dict[tuple[str, str], Tolerance]:
    """The standard table with overrides keyed ``<backend>_<variant>`` (e.g. ``onnx_fp32``),
    each checked against the format table."""
    table = dict(STANDARD_TOLERANCES)
    for key, tol in overrides.items():
        fmt, variant = key.rsplit("_", 1)
        if (fmt, variant) not in table:
            raise KeyError(f"no such format variant: {key}")
        table[(fmt, variant)] = tol
    return table


@dataclass
class ModelSpec:
    """A model of the zoo (or a user's model) and all that is known about it.

    Args:
        name: registry name, also the TF Serving model name.
        task: "generate", "image-to-image" or "autoencoder".
        signatures: first one is ``serving_default``.
        build: returns a fresh, untrained Keras model.
        sample_inputs: ``(n, seed, signature, size) -> Inputs`` for parity;
            ``size`` is (H, W) for dynamic-spatial models, else ignored.
        calibration_inputs: ``(n, signature) -> Inputs`` of real data for int8.
        canonical_size: (H, W) used where a backend needs a fixed size.
        spatial_multiple: H and W must be multiples of this (down/up sampling).
        scale: output H/W over input H/W (4 for srgan).
        parity_side: smallest side of the sizes parity checks (None: 16 px); a
            model whose layers need context to behave as in use (instance norm
            statistics) asks for more.
        make_trainer / evaluate: training and held-out quality (zoo only).
        quality_target: (metric, ">=" or "<=", bound) that ``evaluate`` of the
            shipped weights must meet.
    """

    name: str
    task: str
    description: str
    signatures: tuple[Signature, ...]
    build: Callable[[], Any]
    sample_inputs: Callable[..., Inputs]
    calibration_inputs: Callable[..., Inputs] | None
    tolerances: dict[tuple[str, str], Tolerance]
    canonical_size: tuple[int, int] | None = None
    spatial_multiple: int = 1
    scale: int = 1
    parity_side: int | None = None
    make_trainer: Callable[..., Any] | None = None
    evaluate: Callable[..., dict[str, float]] | None = None
    default_steps: int = 1000
    quality_target: tuple[str, str, float] | None = None
    source: Path | None = None  # a user's model file; None for the zoo
    extra: dict[str, Any] = field(default_factory=dict)

    def with_outputs(self, change: Callable[[TensorSpec], TensorSpec]) -> ModelSpec:
        """This spec with every signature's output TensorSpecs replaced by ``change(tensor)``."""
        sigs = tuple(replace(s, outputs=tuple(change(t) for t in s.outputs)) for s in self.signatures)
        return replace(self, signatures=sigs)

    def meets_quality_target(self, metrics: dict[str, float]) -> bool:
        key, op, bound = self.quality_target
        return metrics[key] >= bound if op == ">=" else metrics[key] <= bound

    @property
    def default_signature(self) -> Signature:
        return self.signatures[0]

    def signature(self, name: str) -> Signature:
        from genimg_export.errors import NotFoundError, did_you_mean

        for sig in self.signatures:
            if sig.name == name:
                return sig
        names = [s.name for s in self.signatures]
        raise NotFoundError(
            f"model '{self.name}' has no signature '{name}'{did_you_mean(name, names)};"
            f" it has: {', '.join(names)}"
        )

    @property
    def dynamic_spatial(self) -> bool:
        return any(t.dynamic_spatial for t in self.default_signature.inputs)

    @property
    def weights_path(self) -> Path:
        return Path(__file__).parent / "weights" / f"{self.name}.keras"

    @property
    def card_path(self) -> Path:
        return self.weights_path.with_suffix(".card.json")

    @property
    def has_weights(self) -> bool:
        return self.source is not None or self.weights_path.exists()
