"""Export a Keras model the test builds as a user's model, calibrated on seeded noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def export_user_model(model, root: Path, pairs: list[tuple[str, str]], samples: int = 16) -> tuple[Path, list[dict]]:
    """Save ``model`` as ``root/<name>.keras``, export ``pairs`` of (format, variant) to ``root/out``
    with ``samples`` uniform [-1, 1] calibration inputs of 16 x 16; (out, its manifest entries)."""
    from genimg_export.exporters import run_all
    from genimg_export.zoo import loading, user

    path = root / f"{model.name}.keras"
    model.save(path)
    (name, shape), = [(t.name, t.shape[1:]) for t in model.inputs]
    channels = shape[-1]
    calibration = np.random.default_rng(0).uniform(-1, 1, (samples, 16, 16, channels)).astype(np.float32)
    np.savez(root / "calib.npz", **{name: calibration})
    spec = user.with_calibration(loading.get_spec(str(path)), npz=root / "calib.npz")
    outcomes = run_all(spec, spec.extra["model"], root / "out", pairs=pairs, calibration_samples=samples)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return root / "out", json.loads((root / "out" / "manifest.json").read_text())["artifacts"]
