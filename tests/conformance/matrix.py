"""The conformance matrix: one architecture, saved as a user saves it, through
``run_all`` (what ``genimg-export all`` runs) and ``run_parity``; one cell per
(format, variant) of the format table: "ok" or the precise reason.

``PYTHONPATH=tests python -m conformance.matrix [--full] [--hub] [NAME ...]`` measures and prints
the rows of ``benchmarks/user_models.md``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conformance.architectures import ARCHS, Arch, save_hub

CALIBRATION = 64  # samples in the calibration .npz (parity reuses them)
SIZE = (16, 16)  # H x W of the calibration samples of a fully convolutional model
FULL_FIXED = (32, 32)  # the full-size models' fixed-size files: a 16.7 M-param net calibrates 4x faster than at 64x64
# The hub forms document their image outputs as 0..255, as TF Hub's SR models do, and the matrix says so once at
# export, as a user would (``export --output-range 0,255``). Only where the network bounds its output (tanh or
# sigmoid, which the .keras form declares): the SR nets and the LDM decoder end in a linear conv whose random-init
# output spreads far past 0..255 (RRDBNet's over 1667), where a declared 0..255 would be false.
HUB_DOCUMENTED = {"pix2pix_unet", "cyclegan_resnet", "dcgan_generator", "vae_decoder", "two_in_two_out",
                  "image_and_score"}


@dataclass
class Measured:
    """What one (architecture, saved form) got: a cell per (format, variant), and timings."""

    arch: str
    form: str  # "keras" or "hub"
    cells: dict[str, str] = field(default_factory=dict)  # "tflite/int8" -> "ok" | reason
    seconds: dict[str, float] = field(default_factory=dict)
    export_seconds: float = 0.0
    parity_seconds: float = 0.0
    params: int = 0


def save(arch: Arch, root: Path, form: str, full: bool = False) -> tuple[Path, Path]:
    """(model path, calibration .npz) of ``arch`` saved as .keras or as a TF-Hub-style SavedModel."""
    model = arch.model(full)
    data = arch.inputs(model, CALIBRATION, SIZE, seed=1)
    if form == "keras":
        path = root / f"{arch.name}.keras"
        model.save(path)
    else:
        path = root / arch.name / "1"
        save_hub(arch, model, path)
        data = {k: _to_hub(arch, v) for k, v in data.items()}
    np.savez(root / f"{arch.name}.{form}.npz", **data)
    return path, root / f"{arch.name}.{form}.npz"


def export_spec(arch: Arch, path: Path, npz: Path, form: str):
    """The spec ``run_all`` exports: the saved model with its calibration .npz and, for a hub
    form in HUB_DOCUMENTED, its image outputs' 0..255 (what ``--output-range 0,255`` records)."""
    from genimg_export.zoo import loading, user

    spec = user.with_calibration(loading.get_spec(str(path)), npz=npz)
    documented = form == "hub" and arch.name in HUB_DOCUMENTED
    return user.with_output_range(spec, {"*": (0.0, 255.0)}) if documented else spec


def _to_hub(arch: Arch, x: np.ndarray) -> np.ndarray:
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        return x
    lo, hi = arch.image_range
    return ((x - lo) / (hi - lo) * 255.0).astype(np.float32)


def measure(arch: Arch, root: Path, form: str = "keras", full: bool = False) -> Measured:
    """Export ``arch`` to every (format, variant) and check each with parity."""
    from genimg_export.exporters import run_all
    from genimg_export.parity import run_parity

    root.mkdir(parents=True, exist_ok=True)
    path, npz = save(arch, root, form, full)
    spec = export_spec(arch, path, npz, form)
    got = Measured(arch.name, form, params=_params(spec))
    start = time.perf_counter()
    sized = {"input_size": FULL_FIXED} if full and spec.dynamic_spatial else {}
    outcomes = run_all(spec, spec.extra["model"], root / f"out_{form}", calibration_samples=CALIBRATION, **sized)
    got.export_seconds = time.perf_counter() - start
    got.seconds = {f"{o.format}/{o.variant}": round(o.seconds, 1) for o in outcomes}
    start = time.perf_counter()
    result = run_parity(str(path), root / f"out_{form}", keras_model=spec.extra["model"])
    got.parity_seconds = time.perf_counter() - start
    got.cells = cells(outcomes, result)
    return got


def cells(outcomes, result) -> dict[str, str]:
    """{format/variant: "ok" | why not} from ``run_all``'s outcomes and a parity result."""
    from genimg_export.artifacts.formats import format_variants

    found = {f"{o.format}/{o.variant}": "ok" if o.ok else f"export: {o.error or o.skipped}" for o in outcomes}
    for r in result.rows:
        if found.get(r.label) == "ok" and not r.passed:
            found[r.label] = f"parity ({r.output}): {r.reason}"
    return {f"{f}/{v}": found.get(f"{f}/{v}", "not attempted") for f, v in format_variants()}


def _params(spec) -> int:
    model = spec.extra["model"]
    return int(model.count_params()) if hasattr(model, "count_params") else 0


def markdown_row(m: Measured, columns: list[str]) -> str:
    cells = ["✓" if m.cells.get(c) == "ok" else f"✗ {m.cells.get(c, '-')}".replace("|", "/") for c in columns]
    seconds = f"{m.export_seconds:.0f} + {m.parity_seconds:.0f}"
    params = f"{m.params:,}" if m.params else "-"
    return f"| {m.arch} | {m.form} | {params} | {' | '.join(cells)} | {seconds} |"


def main(argv: list[str]) -> None:
    import tempfile

    from genimg_export.artifacts.formats import format_variants

    full = "--full" in argv
    names = [a for a in argv if not a.startswith("--")] or list(ARCHS)
    forms = ["keras", "hub"] if "--hub" in argv else ["keras"]
    columns = [f"{f}/{v}" for f, v in format_variants()]
    print(f"| architecture | saved as | params | {' | '.join(columns)} | seconds (all + parity) |")
    print("|" + "---|" * (len(columns) + 4))
    for name in names:
        for form in forms:
            with tempfile.TemporaryDirectory() as tmp:
                m = measure(ARCHS[name], Path(tmp), form, full)
            print(markdown_row(m, columns), flush=True)
            print("<!--", {c: s for c, s in m.seconds.items()}, "-->", flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
