"""Zoo models exported once per test process, shared by every test module that imports this.

(A session fixture imported into several modules would run once per module;
this cache makes it once per process.) Shipped weights are used where they
exist; otherwise ``spec.build()`` gives an untrained model whose all-zero
kernels (srgan's residual head starts at zero) are set to small seeded noise,
so that every layer affects the output and a broken layer shows in parity.
Quantized-variant figures therefore differ from those of trained weights.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CACHE: dict[str, Exported] = {}


@dataclass
class Exported:
    spec: object
    model: object
    out: Path
    outcomes: dict  # (format, variant) -> exporters.Outcome
    weights: Path  # the reference model as a .keras file, for the CLI's --weights


def reference_model(spec):
    """Shipped weights if present, else an untrained model with no all-zero kernels."""
    import keras

    from genimg_export.zoo import loading

    if spec.has_weights:
        return loading.load_model(spec)
    keras.utils.set_random_seed(0)
    model = spec.build()
    rng = np.random.default_rng(0)
    for w in model.trainable_weights:
        if len(w.shape) > 1 and not np.any(w.numpy()):
            w.assign(rng.normal(0.0, 0.02, w.shape).astype("float32"))
    return model


def exported(name: str) -> Exported:
    """Export zoo model ``name`` in every format and variant (once per process)."""
    if name not in _CACHE:
        from genimg_export.exporters import run_all
        from genimg_export.zoo import registry

        spec = registry.get(name)
        model = reference_model(spec)
        root = Path(tempfile.mkdtemp(prefix=f"genimg-test-{name}-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        weights = root / f"{name}.keras"
        model.save(weights)
        outcomes = {(o.format, o.variant): o for o in run_all(spec, model, root / "out")}
        _CACHE[name] = Exported(spec, model, root / "out", outcomes, weights)
    return _CACHE[name]
