"""The declarative format table: one row per export format.

Adding a format is one row here, one exporter module with an ``export``
function, and one runner in ``genimg_export.runners.BACKENDS``. Tests,
``export_all`` and the CLI all iterate over this table; nothing lists
formats or variants by hand elsewhere.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Format:
    """One export format.

    Args:
        name: manifest ``format`` and runner backend name.
        suffix: file suffix, or "" for a directory artifact.
        variants: variant names, in export order (the first is the default float one).
        options: option names each variant accepts (beyond spec/model/out).
        calibrated: variants that need ``spec.calibration_inputs`` (int8).
        exporter: ``module:function`` exporting one variant; imported lazily.
        runner: backend name in ``genimg_export.runners.BACKENDS``.
    """

    name: str
    suffix: str
    variants: tuple[str, ...]
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    calibrated: tuple[str, ...] = ()
    exporter: str = ""
    runner: str = ""

    def export_fn(self):
        module, fn = self.exporter.split(":")
        return getattr(importlib.import_module(module), fn)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="saved_model",
            suffix="",
            variants=("fp32",),
            options={"fp32": ("version",)},
            exporter="genimg_export.exporters.saved_model:export",
            runner="saved_model",
        ),
        Format(
            name="tflite",
            suffix=".tflite",
            variants=("fp32", "fp16", "dynamic", "int8"),
            options={"int8": ("int8_io", "calibration_samples")},
            calibrated=("int8",),
            exporter="genimg_export.exporters.tflite:export",
            runner="tflite",
        ),
        Format(
            name="onnx",
            suffix=".onnx",
            variants=("fp32", "int8"),
            options={"fp32": ("opset",), "int8": ("opset", "calibration_samples")},
            calibrated=("int8",),
            exporter="genimg_export.exporters.onnx:export",
            runner="onnx",
        ),
    )
}


def format_variants() -> list[tuple[str, str]]:
    """Every (format, variant) pair, in export order: the rows of the ✓/✗ table."""
    return [(f.name, v) for f in FORMATS.values() for v in f.variants]


def options_for(fmt: str, variant: str, options: dict) -> dict:
    """The subset of ``options`` that this variant accepts (others are ignored)."""
    accepted = FORMATS[fmt].options.get(variant, ())
    return {k: v for k, v in options.items() if k in accepted and v is not None}
