"""Re-running an export must not add a SavedModel version identical to the latest one.

TF Serving serves every new version folder it sees: re-running ``all`` on the same
weights used to add version 2, 3, ... of the same graph (issue 16). A versioned row's
export is skipped, and the reason said, when the latest recorded version of that
served name still exists and was made from the same source hash, with the same tool
versions and default options. An explicit ``--version``, changed weights, any option
set (``--input-size``, ``--batch``, ``--xla``), a changed signature (an ``--output-range``
recorded on an output), or a fixed-size fallback still adds one.
"""

from __future__ import annotations

from pathlib import Path

from genimg_export.artifacts import manifest
from genimg_export.artifacts.formats import get
from genimg_export.zoo.spec import ModelSpec

# What a default export records by itself, not set by the user (custom_objects: how to load
# the source, not an option of the export).
RECORDED = {"version", "served_as", "hosts", "compute_dtype", "custom_objects"}


def same_as_latest(spec: ModelSpec, model, out: Path, fmt: str, variant: str, options: dict) -> str | None:
    """Why this (format, variant) need not be exported again, or None to export it."""
    row = get(fmt)
    if not row.versioned or any(k != "version" for k in options) or options.get("version") is not None:
        return None
    served = row.served_name(spec.name, variant)
    entries = [e for e in manifest.load(Path(out))
               if (e.format, e.variant, e.options.get("served_as", e.model)) == (fmt, variant, served)
               and isinstance(e.options.get("version"), int)]
    if not entries:
        return None
    latest = max(entries, key=lambda e: e.options["version"])
    if (not (Path(out) / latest.path).is_dir() or latest.fixed_size or set(latest.options) - RECORDED
            or latest.signatures != manifest.signatures_json(spec.signatures, None, spec.scale)
            or latest.tool_versions != manifest.tool_versions(*row.tools)
            or latest.source_sha256 != manifest.source_sha256(spec, model)):
        return None
    return (f"identical to version {latest.options['version']} at {latest.path} (same weights, options and"
            " tools); not added again (pass --version N to add one anyway)")
