"""One pipeline for every format: what exporting one (format, variant) means beyond converting.

For a row of the format table and one of its variants, the pipeline checks
the options (refusing one the variant does not take) and the calibration data,
then for each artifact of the row (one per signature, or one for all) it
converts through the row's ``convert``, writes the result under a hidden
temporary name, smoke-runs it through the row's runner, falls back to the
spec's canonical size when dynamic H x W fails, embeds the metadata, renames
it into the place ``artifacts.layout`` gives, and records it in the manifest.

A converter is ``convert(job: Job, fixed_size) -> Converted``: it turns the
job's model (or the SavedModel ``job.source`` hands out at that size) into
something ``Converted.write(path, metadata)`` can write.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from genimg_export import fs
from genimg_export.artifacts import layout, manifest
from genimg_export.artifacts.formats import Format, Variant, check_options, get, options_for
from genimg_export.errors import ExportError, InvalidInputError
from genimg_export.exporters import check
from genimg_export.zoo.spec import ModelSpec, Signature

CALIBRATION_FLAGS = "--calibration-npz FILE.npz (keys = input names) or --calibration-dir DIR (images)"


@dataclass
class Job:
    """One artifact to make: the model, which variant, which signatures it holds, and the options."""

    spec: ModelSpec
    model: object
    out: Path
    row: Format
    variant: Variant
    signatures: tuple[Signature, ...]
    source: object  # saved_model.SavedModelSource
    options: dict
    log: Callable[[str], None] | None = None

    @property
    def what(self) -> str:
        sigs = f" ({self.signatures[0].name})" if self.row.per_signature else ""
        return f"{self.row.name} {self.variant.name} of '{self.spec.name}'{sigs}"

    @property
    def fixed_size(self) -> list[int] | None:
        """The H x W a fixed-size file gets: ``--input-size``, else the spec's canonical size."""
        size = self.options.get("input_size") or self.spec.canonical_size
        return list(size) if size else None

    @property
    def fixed_batch(self) -> int | None:
        """The batch dim a fixed-size file is traced at (None: dynamic)."""
        return self.options.get("batch") or self.row.fixed_batch


@dataclass
class Converted:
    """What a converter made: ``write(path, metadata)`` puts it at ``path`` with the embedded
    metadata; ``options`` are recorded in the manifest; ``finish`` runs once it is in place."""

    write: Callable[[Path, dict], None]
    options: dict = field(default_factory=dict)
    finish: Callable[[], None] | None = None


def calibration_missing(spec: ModelSpec, fmt: str, variant: str) -> str | None:
    """Why ``variant`` cannot be made for ``spec`` (it needs calibration data there is none of), or None."""
    if get(fmt).variant(variant).calibrated and spec.calibration_inputs is None:
        return f"{variant} needs calibration data and model '{spec.name}' has none; pass {CALIBRATION_FLAGS}"
    return None


def require_calibration(spec: ModelSpec, pairs) -> None:
    """InvalidInputError for the first of ``pairs`` that needs calibration data ``spec`` lacks."""
    for fmt, variant in pairs:
        why = calibration_missing(spec, fmt, variant)
        if why:
            raise InvalidInputError(why)


def check_request(spec: ModelSpec, pairs, options: dict, strict: bool) -> None:
    """Everything about a request decidable before loading the model: known rows, options
    that some variant takes, a ``--input-size`` the model can take, calibration data where
    ``strict`` (a single variant asked for)."""
    check_options(list(pairs), options)
    check_input_size(spec, options.get("input_size"))
    if strict:
        require_calibration(spec, pairs)


def check_input_size(spec: ModelSpec, size) -> None:
    """InvalidInputError unless ``size`` (H, W) is None or a size the spec's dynamic H x W takes."""
    if size is None:
        return
    if not spec.dynamic_spatial:
        raise InvalidInputError(f"--input-size: model '{spec.name}' has no dynamic H x W to fix")
    m = spec.spatial_multiple
    if len(size) != 2 or min(size) < 1 or any(d % m for d in size):
        raise InvalidInputError(
            f"--input-size {'x'.join(map(str, size))}: model '{spec.name}' takes H and W that are multiples of {m}"
        )


def export(spec: ModelSpec, model, out: Path, fmt: str, variant: str, source, log=None,
           options: dict | None = None) -> list[manifest.Artifact]:
    """Export one (format, variant) with options it accepts; record it in the manifest."""
    require_calibration(spec, [(fmt, variant)])
    artifacts = make(spec, model, out, fmt, variant, source, log, options)
    manifest.update(Path(out), artifacts)
    return artifacts


def make(spec: ModelSpec, model, out: Path, fmt: str, variant: str, source, log=None,
         options: dict | None = None) -> list[manifest.Artifact]:
    """Export one (format, variant) into place, without recording it in the manifest; the
    caller has checked its calibration data (``calibration_missing``)."""
    row = get(fmt)
    options = options_for(fmt, variant, options or {})
    served = row.served_name(spec.name, variant)  # bf16/fp16 SavedModels: their own model name
    folder = fs.check_out_dir(Path(out) / row.folder / (served if row.versioned else ""))
    fs.sweep_stale(folder)
    version = new_version(out, spec, options.pop("version", None), served) if row.versioned else None
    units = [(s,) for s in spec.signatures] if row.per_signature else [tuple(spec.signatures)]
    artifacts = []
    for sigs in units:
        job = Job(spec, model, Path(out), row, row.variant(variant), sigs, source, options, log)
        artifacts.append(_artifact(job, Path(out), version))
    return artifacts


def _artifact(job: Job, out: Path, version: int | None) -> manifest.Artifact:
    start = time.perf_counter()
    spec, row = job.spec, job.row
    place = layout.Place(row.name, job.variant.name, spec.name,
                         job.signatures[0].name if row.per_signature else None, version)
    target = out / layout.relative_path(place, spec.default_signature.name)
    source_hash = manifest.source_sha256(spec, job.model)
    versions = manifest.tool_versions(*row.tools)
    recorded = {"version": version} if version else {}
    with fs.atomic_path(target, replace=not row.versioned) as tmp:
        attempt = functools.partial(_attempt, job, tmp, recorded, source_hash, versions)
        (converted, options), fixed = with_fallback(job, attempt)
    if converted.finish:
        converted.finish()
    return manifest.make_artifact(
        spec, out, target, row.name, job.variant.name, signatures=list(job.signatures), source=source_hash,
        versions=versions, seconds=time.perf_counter() - start, fixed_size=fixed, options=options,
    )


def _attempt(job: Job, tmp: Path, recorded: dict, source_hash: str, versions: dict, fixed, why):
    """Convert at ``fixed`` (None: dynamic H x W), write to ``tmp`` with the metadata, smoke-run it.
    Returns (the Converted, the options to record)."""
    converted = job.row.convert_fn()(job, fixed)
    options = {**recorded, **converted.options, **({"fixed_size_reason": why} if why else {})}
    meta = manifest.embedded_metadata(job.spec, job.row.name, job.variant.name, list(job.signatures), source_hash,
                                      versions, fixed, options)
    fs.remove(tmp)
    converted.write(tmp, meta)
    check.smoke_run(job.spec, job.row.runner, tmp, job.signatures, check.probe_size(job.spec, fixed),
                    (job.fixed_batch or 1) if fixed else 1)
    return converted, options


def with_fallback(job: Job, attempt):
    """``attempt(None, None)`` with dynamic H x W; if that fails and the model can take a
    fixed size, ``attempt(size, why)`` with the function retraced at it (every dim known:
    the row's batch, ``--input-size`` or the canonical H x W). Once a variant of a format
    needed that, later variants of it in the same run (``job.source.fixed``) go straight
    to the fixed size. Returns (its result, the fixed size or None)."""
    memo = job.source.fixed if job.source is not None else {}
    fixed, earlier = job.fixed_size, memo.get(job.row.name)
    if job.options.get("xla") and job.options.get("input_size"):
        earlier = "--xla with --input-size: one static shape, compiled once (docs/accelerators.md)"
    if earlier and fixed:
        return _at_fixed(job, attempt, fixed, earlier, None)
    try:
        return attempt(None, None), None
    except Exception as e:  # converters and runtimes fail with many types
        if not (job.spec.dynamic_spatial and fixed):
            raise ExportError(f"{job.what}: {check.reason(e)}") from e
        dynamic_error = e
    why = f"dynamic H x W failed: {check.reason(dynamic_error)}"
    if job.log:
        job.log(f"{why}; retrying at {fixed[0]}x{fixed[1]}")
    result = _at_fixed(job, attempt, fixed, why, dynamic_error)
    memo[job.row.name] = f"{why} (in {job.row.name} {job.variant.name}; later variants skip the attempt)"
    return result


def _at_fixed(job: Job, attempt, fixed, why: str, dynamic_error):
    try:
        return attempt(fixed, why), fixed
    except Exception as e:
        if dynamic_error is None:
            raise ExportError(f"{job.what}: at the fixed {fixed[0]}x{fixed[1]} ({why}): {check.reason(e)}") from e
        raise check.fallback_failed(job.what, e, dynamic_error, fixed) from e


def versions(base: Path) -> list[int]:
    """The numeric version directories under a model's base path, ascending."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def new_version(out: Path, spec: ModelSpec, version: int | None, name: str | None = None) -> int:
    """The version to write: ``version`` if it is new, else the next after the highest present
    (of the model served as ``name``, default the spec's name)."""
    name = name or spec.name
    base = Path(out) / next(f.folder for f in _versioned_rows()) / name
    present = versions(base)
    if version is None:
        return (present[-1] + 1) if present else 1
    if version < 1:
        raise InvalidInputError(f"--version must be a positive integer, got {version}")
    if (base / str(version)).exists():
        raise ExportError(
            f"version {version} of '{name}' already exists at {base / str(version)}; TF Serving"
            f" may be serving it, so it is not overwritten. Pass --version {max(present, default=0) + 1}"
            " (or omit --version for the next one), or remove that directory first"
        )
    return version


def _versioned_rows():
    from genimg_export.artifacts.formats import FORMATS

    return [f for f in FORMATS.values() if f.versioned]
