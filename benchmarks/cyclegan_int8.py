"""Why the conformance CycleGAN missed the int8 floor, and what moved it (issue 12; figures in
benchmarks/user_models.md). Run from the repository root:

    PYTHONPATH=tests .venv/bin/python benchmarks/cyclegan_int8.py [--json cyclegan_int8.json]

1. The float model's own sensitivity: its output with the input merely rounded to the grid an
   int8 file uses for [-1, 1] (scale 2/255, zero point 128), against its output on the input,
   random-init and trained, at 16/32/64 px (no quantized file involved).
2. The int8 files' parity PSNR (run_parity, as the matrix cells) for random-init / trained x
   the exporters as they were (statistics int8: norm_stats' finders answer nothing) / as they
   are (statistics float), .keras (over 2) and hub (over the recorded 0..255).
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def _variant(trained: bool, float_statistics: bool):
    from conformance import architectures

    from genimg_export.exporters import norm_stats

    saved = architectures._identity_trained, norm_stats.onnx_nodes, norm_stats.tflite_tensors
    if not trained:
        architectures._identity_trained = lambda model: model
    if not float_statistics:
        norm_stats.onnx_nodes = norm_stats.tflite_tensors = lambda _: []
    try:
        yield
    finally:
        architectures._identity_trained, norm_stats.onnx_nodes, norm_stats.tflite_tensors = saved


def sensitivity(trained: bool) -> dict:
    from conformance.architectures import ARCHS

    from genimg_export.zoo.data import psnr

    arch = ARCHS["cyclegan_resnet"]
    with _variant(trained, True):
        model = arch.model()
    found = {}
    for side in (16, 32, 64):
        x = arch.inputs(model, 64, (side, side), seed=1)["image"]
        on_grid = (np.clip(np.round(x * 127.5) + 128, 0, 255) - 128) / 127.5
        found[f"{side}px"] = round(psnr(np.asarray(model(on_grid)), np.asarray(model(x))), 1)
    return found


def int8_psnr(trained: bool, float_statistics: bool, form: str) -> dict:
    from conformance.architectures import ARCHS
    from conformance.matrix import export_spec, save

    from genimg_export.exporters import run_all
    from genimg_export.parity import run_parity

    with _variant(trained, float_statistics), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path, npz = save(ARCHS["cyclegan_resnet"], root, form)
        spec = export_spec(ARCHS["cyclegan_resnet"], path, npz, form)
        pairs = [("onnx", "fp32"), ("tflite", "int8"), ("onnx", "int8")]
        run_all(spec, spec.extra["model"], root / "out", pairs=pairs, calibration_samples=64)
        rows = run_parity(str(path), root / "out").rows
    return {r.label: round(r.psnr_db, 1) for r in rows if r.variant == "int8"}


def main(argv: list[str]) -> None:
    found = {"float model, input on the int8 grid (dB)": {
        "random-init": sensitivity(False), "trained": sensitivity(True)}}
    print(json.dumps(found), flush=True)
    table = {}
    for trained in (False, True):
        for stats in (False, True):
            for form in ("keras", "hub"):
                key = f"{'trained' if trained else 'random-init'}, statistics {'float' if stats else 'int8'}, {form}"
                table[key] = int8_psnr(trained, stats, form)
                print(key, table[key], flush=True)
    found["int8 parity PSNR (dB)"] = table
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
