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
    that some variant takes, calibration data where ``strict`` (a single variant asked for)."""
    check_options(list(pairs), options)
    if strict:
        require_calibration(spec, pairs)


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
    folder = fs.check_out_dir(Path(out) / row.folder / (spec.name if row.versioned else ""))
    fs.sweep_stale(folder)
    version = new_version(out, spec, options.pop("version", None)) if row.versioned else None
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
    check.smoke_run(job.spec, job.row.runner, tmp, job.signatures, check.probe_size(job.spec, fixed))
    return converted, options


def with_fallback(job: Job, attempt):
    """``attempt(None, None)`` with dynamic H x W; if that fails and the spec has a canonical
    size, ``attempt(size, why)`` at it. Returns (its result, the fixed size or None)."""
    spec = job.spec
    try:
        return attempt(None, None), None
    except Exception as e:  # converters and runtimes fail with many types
        if not (spec.dynamic_spatial and spec.canonical_size):
            raise ExportError(f"{job.what}: {check.reason(e)}") from e
        dynamic_error = e
    fixed = list(spec.canonical_size)
    if job.log:
        job.log(f"dynamic H x W failed ({check.reason(dynamic_error)}); retrying at {fixed[0]}x{fixed[1]}")
    try:
        return attempt(fixed, f"dynamic H x W: {check.reason(dynamic_error)}"), fixed
    except Exception as e:
        raise check.fallback_failed(job.what, e, dynamic_error, fixed) from e


def versions(base: Path) -> list[int]:
    """The numeric version directories under a model's base path, ascending."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def new_version(out: Path, spec: ModelSpec, version: int | None) -> int:
    """The version to write: ``version`` if it is new, else the next after the highest present."""
    base = Path(out) / next(f.folder for f in _versioned_rows()) / spec.name
    present = versions(base)
    if version is None:
        return (present[-1] + 1) if present else 1
    if version < 1:
        raise InvalidInputError(f"--version must be a positive integer, got {version}")
    if (base / str(version)).exists():
        raise ExportError(
            f"version {version} of '{spec.name}' already exists at {base / str(version)}; TF Serving"
            f" may be serving it, so it is not overwritten. Pass --version {max(present, default=0) + 1}"
            " (or omit --version for the next one), or remove that directory first"
        )
    return version


def _versioned_rows():
    from genimg_export.artifacts.formats import FORMATS

    return [f for f in FORMATS.values() if f.versioned]
