"""Where each artifact lives in an export directory, and the inverse.

Read from the format table's rows, never from named formats::

    serving/<model>[_<variant>]/<version>/     versioned rows (SavedModel); the default
                                               variant untagged, the others served by that name
    tflite/<model>.<variant>.tflite            one file for every signature
    onnx/<model>[.<signature>][.<variant>].onnx  one file per signature; the
                                               default variant and signature untagged
    triton/<model>[_<variant>]/                a Triton model per ONNX file of the default
                                               signature (``genimg-export triton``)

``relative_path`` places a ``Place``; ``parse`` turns a path back into the same
``Place`` (or None), and ``find`` lists what an export directory holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genimg_export.artifacts.formats import FORMATS, Format

DEFAULT_SIGNATURE = "serving_default"
TRITON_FOLDER = "triton"


def triton_name(model: str, variant: str) -> str:
    """The name Triton serves an ONNX variant under: the model's own for the default, else
    ``<model>_<variant>`` (e.g. srgan_int8)."""
    return FORMATS["onnx"].served_name(model, variant)


def triton_variants(out: Path, model: str) -> list[str]:
    """The ONNX variants of ``model`` that ``out``'s Triton repository holds."""
    return [v.name for v in FORMATS["onnx"].variants
            if (Path(out) / TRITON_FOLDER / triton_name(model, v.name) / "config.pbtxt").is_file()]


@dataclass(frozen=True)
class Place:
    """What one artifact is: format, variant, model, and where relevant signature or version.

    ``signature`` is set only for per-signature formats (the others hold every
    signature in one artifact); ``version`` only for versioned ones.
    """

    format: str
    variant: str
    model: str
    signature: str | None = None
    version: int | None = None


def relative_path(place: Place, default_signature: str = DEFAULT_SIGNATURE) -> Path:
    """The artifact's path relative to the export directory."""
    row = FORMATS[place.format]
    if row.versioned:
        return Path(row.folder, row.served_name(place.model, place.variant), str(place.version))
    parts = [place.model]
    if row.per_signature and place.signature != default_signature:
        parts.append(place.signature)
    if row.tag_default or place.variant != row.default.name:
        parts.append(place.variant)
    return Path(row.folder, ".".join(parts) + row.suffix)


def parse(rel: Path, model: str, default_signature: str = DEFAULT_SIGNATURE) -> Place | None:
    """The Place of a path relative to the export directory, or None if no row writes it there."""
    rel = Path(rel)
    for row in FORMATS.values():
        place = _versioned(row, rel, model) if row.versioned else _file(row, rel, model, default_signature)
        if place is not None and relative_path(place, default_signature) == rel:
            return place
    return None


def find(out: Path, model: str, default_signature: str = DEFAULT_SIGNATURE) -> list[tuple[Place, Path]]:
    """The artifacts of ``model`` present under ``out``, in table order (variants in row order,
    then signature, then version ascending)."""
    found = []
    for row in FORMATS.values():
        folder = Path(out) / row.folder
        candidates = ([p for v in row.variant_names for p in (folder / row.served_name(model, v)).glob("*")]
                      if row.versioned else folder.glob(f"{model}*{row.suffix}"))
        here = []
        for path in candidates:
            place = parse(path.relative_to(out), model, default_signature)
            if place is not None and _complete(row, path):
                here.append((place, path))
        names = row.variant_names
        found += sorted(here, key=lambda f: (names.index(f[0].variant), f[0].signature or "", f[0].version or 0))
    return found


def expected(fmt: str, model: str) -> str:
    """Where artifacts of ``fmt`` would be, for a 'not found' message."""
    row = FORMATS[fmt]
    if row.versioned:
        return f"{row.folder}/{model}/<version>/{row.marker}".rstrip("/")
    return " or ".join(str(relative_path(Place(fmt, v.name, model, DEFAULT_SIGNATURE))) for v in row.variants)


def _versioned(row: Format, rel: Path, model: str) -> Place | None:
    parts = rel.parts
    if len(parts) != 3 or parts[0] != row.folder or not parts[2].isdigit():
        return None
    variant = next((v for v in row.variant_names if row.served_name(model, v) == parts[1]), None)
    return Place(row.name, variant, model, version=int(parts[2])) if variant else None


def _file(row: Format, rel: Path, model: str, default_signature: str) -> Place | None:
    name = rel.name
    if rel.parent != Path(row.folder) or not name.endswith(row.suffix) or not name.startswith(model):
        return None
    tags = name[len(model) : len(name) - len(row.suffix)].split(".")
    if tags[0]:
        return None  # another model whose name starts with this one's
    tags = tags[1:]
    if tags and tags[-1] in row.variant_names:
        variant = tags.pop()
    elif row.tag_default:
        return None
    else:
        variant = row.default.name
    signature = (".".join(tags) or default_signature) if row.per_signature else None
    if tags and not row.per_signature:
        return None
    return Place(row.name, variant, model, signature)


def _complete(row: Format, path: Path) -> bool:
    if row.versioned:
        return not row.marker or (path / row.marker).exists()
    return path.is_file()
