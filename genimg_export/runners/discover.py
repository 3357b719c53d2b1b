"""Find what to check: one Target per backend × variant × signature of a model.

Local artifacts are read from ``out/manifest.json`` when it exists, else from
where the format table's layout (``artifacts.layout``) puts them. Server
backends (grpc, rest, v2) get one target per signature at the address given; v2 also
one per other ONNX variant in the export's Triton repository (served as ``<model>_<variant>``).
"""

from __future__ import annotations

from pathlib import Path

from genimg_export.artifacts.formats import served_variant
from genimg_export.artifacts.target import Target
from genimg_export.errors import InvalidInputError, NotFoundError, did_you_mean
from genimg_export.runners import BACKENDS, SERVER_BACKENDS


def discover(spec, out: Path | None, backends: list[str], servers: dict[str, str] | None = None) -> list[Target]:
    """Targets of ``spec`` for ``backends``; a backend asked for but not found is an error.

    Args:
        out: the export directory (needed for saved_model, tflite, onnx).
        servers: backend -> HOST:PORT for grpc/rest/v2.
    """
    targets: list[Target] = []
    local = _local_targets(spec, out) if out is not None else []
    for backend in backends:
        if backend not in BACKENDS:
            raise InvalidInputError(
                f"unknown backend '{backend}'{did_you_mean(backend, BACKENDS)}; choose from: {', '.join(BACKENDS)}"
            )
        if backend == "keras":
            found = [Target("keras", None, s.name, None) for s in spec.signatures]
        elif backend in SERVER_BACKENDS:
            address = (servers or {}).get(backend)
            if not address:
                raise InvalidInputError(f"backend '{backend}' needs a server address (--{backend}-target HOST:PORT)")
            found = [Target(backend, v, s.name, address) for v in _served_variants(spec, out, backend)
                     for s in spec.signatures]
        else:
            if out is None:
                raise InvalidInputError(f"backend '{backend}' needs --artifacts DIR (the export directory)")
            found = [t for t in local if t.backend == backend]
            if not found:
                raise NotFoundError(
                    f"no {backend} artifacts of '{spec.name}' in {out} (expected {_expected(spec.name, backend)})"
                )
        targets.extend(found)
    return targets


def _served_variants(spec, out: Path | None, backend: str) -> list[str]:
    """The variants a server backend is checked on: its default one, and for v2 every other
    ONNX variant the export's Triton repository holds (``<model>_int8``)."""
    default = served_variant(backend)
    if backend != "v2" or out is None:
        return [default]
    from genimg_export.artifacts import layout

    return [default, *(v for v in layout.triton_variants(out, spec.name) if v != default)]


def local_backends(spec, out: Path) -> list[str]:
    """The local backends that have artifacts of ``spec`` in ``out``, in table order."""
    have = {t.backend for t in _local_targets(spec, out)}
    return [b for b in BACKENDS if b in have]


def _expected(name: str, backend: str) -> str:
    from genimg_export.artifacts import layout
    from genimg_export.artifacts.formats import by_runner

    return layout.expected(by_runner(backend).name, name)


def _local_targets(spec, out: Path) -> list[Target]:
    out = Path(out)
    if not out.is_dir():
        raise NotFoundError(
            f"no export directory {out} (write one with: genimg-export all --model {spec.name} --out {out})"
        )
    if (out / "manifest.json").is_file():
        return _from_manifest(spec, out)
    return _from_layout(spec, out)


def _from_manifest(spec, out: Path) -> list[Target]:
    from genimg_export.artifacts import manifest

    entries = [e for e in manifest.load(out) if e.model == spec.name and e.format in BACKENDS]
    versions = [e for e in entries if e.format == "saved_model" and Path(e.path).name.isdigit()]
    newest = {}  # several SavedModel versions of a variant: check the newest, the one TF Serving serves
    for e in sorted(versions, key=lambda e: int(Path(e.path).name)):
        newest[e.variant] = e
    entries = [e for e in entries if e.format != "saved_model" or e in newest.values()]
    targets = []
    for entry in entries:
        fixed = tuple(entry.fixed_size) if entry.fixed_size else None
        for sig in entry.signatures or [s.name for s in spec.signatures]:
            targets.append(Target(entry.format, entry.variant, sig, out / entry.path, fixed, entry.source_sha256))
    return sorted(targets, key=lambda t: _order(spec, t))


def _order(spec, target: Target) -> tuple:
    from genimg_export.artifacts.formats import by_runner

    row = by_runner(target.backend)
    variants = row.variant_names if row is not None else ()
    sigs = [s.name for s in spec.signatures]
    return (
        list(BACKENDS).index(target.backend),
        variants.index(target.variant) if target.variant in variants else len(variants),
        sigs.index(target.signature) if target.signature in sigs else len(sigs),
    )


def _from_layout(spec, out: Path) -> list[Target]:
    """Targets from the files found where the format table's layout puts them."""
    from genimg_export.artifacts import layout
    from genimg_export.artifacts.formats import FORMATS

    sigs = [s.name for s in spec.signatures]
    found = layout.find(out, spec.name, sigs[0])
    newest = {(p.format, p.variant): p.version for p, _ in found if p.version is not None}  # ascending: last wins
    targets = []
    for place, path in found:
        if place.version != newest.get((place.format, place.variant)):
            continue  # an older SavedModel version: check the one TF Serving serves
        row = FORMATS[place.format]
        fixed = _fixed_size(row, path)
        for sig in ([place.signature] if place.signature else sigs):
            if sig in sigs:
                targets.append(Target(row.runner, place.variant, sig, path, fixed))
    return sorted(targets, key=lambda t: _order(spec, t))


def _fixed_size(row, path: Path) -> tuple[int, int] | None:
    """The fixed size recorded in a file's embedded metadata, where the row reads metadata."""
    read = row.metadata_fn()
    if read is None:
        return None
    try:
        size = (read(path) or {}).get("fixed_size")
    except Exception:  # a damaged file: treat as dynamic, the runner says what is wrong
        return None
    return tuple(size) if size else None
