"""Exporters: one converter module per format, driven by the format table
(``artifacts.formats``) through one pipeline (``pipeline``).

Python API::

    from genimg_export.exporters import export_all
    from genimg_export.zoo import registry
    spec = registry.get("srgan")
    artifacts = export_all(spec, spec.build(), Path("out"))   # or a trained model

``export_variant`` exports one (format, variant); ``run_all`` exports every
row of the table and reports each as an ``Outcome`` (✓, ✗ with the reason, or
skipped with the reason), which is what ``genimg-export all`` prints.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genimg_export.artifacts import manifest
from genimg_export.artifacts.formats import applicable, check_options, format_variants, get
from genimg_export.artifacts.manifest import Artifact
from genimg_export.errors import ExportError, GenimgError
from genimg_export.exporters import check, pipeline, unchanged
from genimg_export.zoo.spec import ModelSpec

__all__ = ["Artifact", "Outcome", "export_all", "export_variant", "run_all"]


@dataclass
class Outcome:
    """What happened to one (format, variant): artifacts on success, else a reason."""

    format: str
    variant: str
    artifacts: list[Artifact] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None


def export_variant(spec: ModelSpec, model, out: Path, fmt: str, variant: str, source, log=None,
                   **options) -> list[Artifact]:
    """Export one (format, variant) and record it in ``out/manifest.json``.

    ``source`` is a ``saved_model.SavedModelSource`` the converters start from;
    an option the variant does not accept (see the format table) is refused
    (InvalidInputError), as is a calibrated variant without calibration data.
    """
    return pipeline.export(spec, model, Path(out), fmt, variant, source, log, options)


def run_all(spec: ModelSpec, model, out: Path, pairs: list[tuple[str, str]] | None = None,
            on_outcome: Callable[[Outcome], None] | None = None, log=None, **options) -> list[Outcome]:
    """Export every (format, variant) in ``pairs`` (default: the whole table), never stopping
    at a failure. Each row gets the options it accepts; an option none of them accepts is
    refused. Calibrated variants are skipped, with the reason, when the spec has no calibration data.
    """
    from genimg_export.exporters import saved_model
    from genimg_export.fs import check_out_dir

    out = check_out_dir(Path(out))
    pairs = pairs or format_variants()
    check_options(pairs, options)
    pipeline.check_input_size(spec, options.get("input_size"))
    spec = with_cached_calibration(spec)
    if any(fmt == "saved_model" for fmt, _ in pairs):  # fail before any work
        saved_model.check_new_version(out, spec, options.get("version"), [v for f, v in pairs if f == "saved_model"])
    outcomes = []
    with saved_model.SavedModelSource(spec, model) as source:
        for fmt, variant in pairs:
            outcome = _one(spec, model, out, fmt, variant, source, log, applicable(fmt, variant, options))
            # TFLite and ONNX convert from the float32 SavedModel, never a reduced-precision one
            if (fmt == "saved_model" and outcome.ok and outcome.artifacts[0].fixed_size is None
                    and variant == get(fmt).default.name and not options.get("xla")):
                source.use(out / outcome.artifacts[0].path)  # convert from what was just exported
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    return outcomes


def with_cached_calibration(spec: ModelSpec) -> ModelSpec:
    """The spec with calibration_inputs memoised, so TFLite and ONNX int8 share one draw."""
    if spec.calibration_inputs is None:
        return spec
    draw, cache = spec.calibration_inputs, {}

    def calibration_inputs(n: int, signature: str = "serving_default"):
        if (n, signature) not in cache:
            cache[n, signature] = draw(n, signature=signature)
        return cache[n, signature]

    return dataclasses.replace(spec, calibration_inputs=calibration_inputs)


def _one(spec, model, out, fmt, variant, source, log, options) -> Outcome:
    start = time.perf_counter()
    outcome = Outcome(fmt, variant)
    if pipeline.calibration_missing(spec, fmt, variant):
        outcome.skipped = "no calibration data (pass --calibration-npz or --calibration-dir)"
        return outcome
    outcome.skipped = unchanged.same_as_latest(spec, model, out, fmt, variant, options)
    if outcome.skipped:
        return outcome
    step_log = None
    if log:
        log(f"{fmt} {variant}")
        step_log = lambda message: log(f"{fmt} {variant}: {message}")  # noqa: E731
    try:
        outcome.artifacts = pipeline.make(spec, model, out, fmt, variant, source, step_log, options)
        manifest.update(out, outcome.artifacts)
    except GenimgError as e:
        outcome.error = str(e)
    except Exception as e:  # a converter crash must not hide the rest of the table
        outcome.error = f"{fmt} {variant}: {check.reason(e)}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def export_all(spec: ModelSpec, keras_model, out: Path, **options) -> list[Artifact]:
    """Export every format and variant; raise ExportError listing failures, if any.

    Options (each row gets those its variant accepts, see the format table):
    ``version``, ``opset``, ``int8_io``, ``calibration_samples``.
    """
    outcomes = run_all(spec, keras_model, out, **options)
    failed = [o for o in outcomes if o.error]
    if failed:
        raise ExportError("; ".join(o.error for o in failed))
    return [a for o in outcomes for a in o.artifacts]
