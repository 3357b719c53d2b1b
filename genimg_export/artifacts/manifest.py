"""Artifacts and ``out/manifest.json``: one entry per exported file or directory.

Example entry (abridged)::

    {"model": "srgan", "format": "tflite", "variant": "int8",
     "path": "tflite/srgan.int8.tflite", "sha256": "3f2a...", "bytes": 233472,
     "signatures": {"serving_default": {"inputs": [{"name": "lr", "dtype": "float32",
                    "shape": [null, null, null, 3], ...}], "outputs": [...]}},
     "value_range": [-1.0, 1.0], "fixed_size": null, "source_sha256": "9c1e...",
     "tool_versions": {...}, "seconds": 8.5, "options": {"int8_io": false, ...}}

An output's ``value_range`` is the one its model declares, or for a user's model that declares
none (a SavedModel in 0..255) the one given to ``export --output-range``; parity reads it back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genimg_export import fs
from genimg_export.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from genimg_export.zoo.spec import ModelSpec

MANIFEST = "manifest.json"
PREPROCESSING = "float32 NHWC in [-1, 1]"


@dataclass
class Artifact:
    """One exported file or directory and everything needed to use and trust it."""

    model: str
    format: str
    variant: str
    path: str  # relative to the export directory, POSIX separators
    sha256: str
    bytes: int
    signatures: dict[str, dict[str, list]]
    value_range: list[float] | None
    source_sha256: str
    tool_versions: dict[str, str]
    seconds: float
    fixed_size: list[int] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Artifact:
        return cls(**entry)


def signatures_json(signatures, fixed_size=None, scale: int = 1) -> dict:
    """{name: {"inputs": [...], "outputs": [...]}}, each tensor as TensorSpec.to_json().

    For a fixed-size export, dynamic H x W become ``fixed_size`` on inputs and
    ``fixed_size * scale`` on outputs.
    """
    out_size = [d * scale for d in fixed_size] if fixed_size else None
    return {
        s.name: {
            "inputs": [_fix(t.to_json(), fixed_size) for t in s.inputs],
            "outputs": [_fix(t.to_json(), out_size) for t in s.outputs],
        }
        for s in signatures
    }


def _fix(tensor: dict, size) -> dict:
    shape = tensor["shape"]
    if size and len(shape) == 4 and (shape[1] is None or shape[2] is None):
        return {**tensor, "shape": [None, *size, shape[3]]}
    return tensor


def value_range(spec: ModelSpec) -> list[float] | None:
    out = spec.default_signature.outputs[0]
    return list(out.value_range) if out.value_range else None


def source_sha256(spec: ModelSpec, model) -> str:
    """What the artifact was made from: the user's file/dir hash, else the Keras weights' hash
    (float bytes of ``model.weights`` in order), so untrained and trained models differ."""
    if "source_sha256" in spec.extra:
        return spec.extra["source_sha256"]
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(w.path.encode() if hasattr(w, "path") else b"")
        digest.update(w.numpy().tobytes())
    return digest.hexdigest()


def tool_versions(*extra_dists: str) -> dict[str, str]:
    """The versions that made a model or artifact: this package, TF, Keras, numpy,
    Python, plus the converters/runtimes named in ``extra_dists``."""
    import importlib.metadata as md
    import platform

    import keras
    import numpy as np
    import tensorflow as tf

    from genimg_export import __version__

    versions = {
        "genimg_export": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for dist in extra_dists:
        versions[dist] = md.version(dist)
    return versions


def make_artifact(spec: ModelSpec, out: Path, path: Path, fmt: str, variant: str, *, signatures,
                  source: str, versions: dict, seconds: float, fixed_size=None, options=None) -> Artifact:
    """Measure the finished artifact at ``path`` (inside ``out``) and describe it."""
    return Artifact(
        model=spec.name,
        format=fmt,
        variant=variant,
        path=Path(path).relative_to(out).as_posix(),
        sha256=fs.sha256_path(path),
        bytes=fs.size_of(path),
        signatures=signatures_json(signatures, fixed_size, spec.scale),
        value_range=value_range(spec),
        source_sha256=source,
        tool_versions=versions,
        seconds=round(seconds, 2),
        fixed_size=list(fixed_size) if fixed_size else None,
        options={**(options or {}), **_custom_objects(spec)},
    )


def _custom_objects(spec) -> dict:
    """The --custom-objects files or modules a user model needed, so the manifest says how to load it."""
    refs = spec.extra.get("custom_objects")
    return {"custom_objects": list(refs)} if refs else {}


def embedded_metadata(spec: ModelSpec, fmt: str, variant: str, signatures, source: str,
                      versions: dict, fixed_size=None, options=None) -> dict[str, Any]:
    """The metadata stored inside a .tflite (genimg_edge.metadata) or .onnx (metadata_props)."""
    return {
        "model": spec.name,
        "task": spec.task,
        "variant": variant,
        "format": fmt,
        "signatures": signatures_json(signatures, fixed_size, spec.scale),
        "value_range": value_range(spec),
        "preprocessing": PREPROCESSING,
        "scale": spec.scale,
        "spatial_multiple": spec.spatial_multiple,
        "fixed_size": list(fixed_size) if fixed_size else None,
        "source_sha256": source,
        "tool_versions": versions,
        "options": options or {},
    }


def load(out: Path) -> list[Artifact]:
    """The artifacts recorded in ``out/manifest.json`` (empty if there is none yet)."""
    path = Path(out) / MANIFEST
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        return [Artifact.from_json(e) for e in data["artifacts"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InvalidInputError(f"{path} is not a genimg-export manifest ({e})") from e


def update(out: Path, artifacts: list[Artifact]) -> None:
    """Add or replace entries (keyed by path); drop entries whose files are gone."""
    out = Path(out)
    with fs.locked(out):
        entries = {a.path: a for a in load(out) if (out / a.path).exists()}
        entries.update({a.path: a for a in artifacts})
        doc = {"format_version": 1, "artifacts": [entries[k].to_json() for k in sorted(entries)]}
        fs.write_text_atomic(out / MANIFEST, json.dumps(doc, indent=2) + "\n")


def find(path: Path) -> tuple[Path, Artifact]:
    """The export directory and manifest entry of an artifact path, searching upwards."""
    path = Path(path).resolve()
    for out in path.parents:
        if (out / MANIFEST).exists():
            rel = path.relative_to(out).as_posix()
            for artifact in load(out):
                if artifact.path == rel:
                    return out, artifact
    raise NotFoundError(f"no manifest.json entry for {path}")
