"""The device check of issue 19, run by ``accelerator_check.sh``: srgan in every SavedModel
variant (plain and XLA-compiled), parity on the accelerator against the Keras model on the
CPU, and p50 / images per second at batch 1, 8 and 32. Writes ``OUT/accelerator_check.json``.

``--dry-run`` takes the same path on the CPU at tiny sizes (CI runs it,
tests/test_accelerator_check.py); without it, no visible GPU is an error.
Exit status: 0 all parity rows pass, 1 some fail, 2 no GPU (or a usage error).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL = "srgan"
REAL = {"size": (64, 64), "batches": (1, 8, 32), "runs": 30, "samples": 8}
DRY = {"size": (16, 16), "batches": (1, 2), "runs": 3, "samples": 2}


def main(argv=None) -> int:
    args = _parse(argv)
    import tensorflow as tf

    plan = DRY if args.dry_run else REAL
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.dry_run:
        print("accelerator_check: no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is"
              " empty); use --dry-run for the CPU path", file=sys.stderr)
        return 2
    device = "/GPU:0" if gpus and not args.dry_run else "/CPU:0"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": MODEL, "dry_run": args.dry_run, "device": _device(tf, gpus, device), "plan": _plan(plan),
              "variants": []}
    spec, model, exported = _export(out / "export")
    inputs = {b: _inputs(spec, b, plan["size"]) for b in plan["batches"]}
    reference = _cpu_reference(tf, spec, model, inputs[plan["batches"][0]])
    for name, path, variant in exported:
        row = {"variant": name, "path": str(path.relative_to(out))}
        with tf.device(device):
            fn = tf.saved_model.load(str(path)).signatures["serving_default"]
            row["parity"] = _parity(spec, variant, fn, inputs[plan["batches"][0]], reference)
            row["timings"] = {str(b): _time(fn, inputs[b], plan["runs"]) for b in plan["batches"]}
        report["variants"].append(row)
        print(_line(row), flush=True)
    (out / "accelerator_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'accelerator_check.json'}")
    return 0 if all(r["parity"]["passed"] for r in report["variants"]) else 1


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the exports and accelerator_check.json")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the same code path, for CI")
    return p.parse_args(argv)


def _export(folder: Path):
    """srgan as every SavedModel variant, plain and with XLA (a second export folder, since an
    XLA SavedModel is a new version of the same served name). Returns (spec, model, rows)."""
    from genimg_export.artifacts.formats import FORMATS
    from genimg_export.exporters import run_all
    from genimg_export.zoo import loading

    row = FORMATS["saved_model"]
    spec = loading.get_spec(MODEL, False)
    model = loading.load_model(spec, None, False)
    pairs = [(row.name, v.name) for v in row.variants]
    shutil.rmtree(folder, ignore_errors=True)  # this script's own exports: a rerun must not skip "identical" ones
    exported = []
    for tag, xla in (("", None), ("+xla", True)):
        sub = folder / ("xla" if xla else "plain")
        for o in run_all(spec, model, sub, pairs, xla=xla):
            if o.error:
                raise SystemExit(f"accelerator_check: export failed: {o.error}")
            exported.append((o.variant + tag, sub / o.artifacts[0].path, row.variant(o.variant)))
    return spec, model, exported


def _inputs(spec, batch: int, size) -> dict:
    return spec.sample_inputs(batch, 0, spec.default_signature.name, size)


def _cpu_reference(tf, spec, model, inputs) -> dict:
    with tf.device("/CPU:0"):
        out = spec.default_signature.call(model, inputs)
    return {k: tf.convert_to_tensor(v).numpy() for k, v in out.items()}


def _parity(spec, variant, fn, inputs, reference) -> dict:
    """Worst output against the CPU Keras reference, held to the variant's floor from the format table."""
    import numpy as np

    from genimg_export.parity import metrics

    got = {k: v.numpy() for k, v in fn(**inputs).items()}
    rows = []
    for t in spec.default_signature.outputs:
        ref, act = reference[t.name], got[t.name]
        span = metrics.data_range_of(t.value_range, ref)
        diff = np.abs(act.astype(np.float64) - ref)
        psnr = metrics.psnr(act, ref, span)  # PSNR over the declared range, as parity computes it
        tol = variant.tolerance
        ok = act.shape == ref.shape and np.isfinite(act).all() and act.dtype == np.float32
        ok = ok and (tol.max_abs is None or diff.max() <= tol.max_abs)
        ok = ok and (tol.min_psnr_db is None or psnr >= tol.min_psnr_db)
        rows.append({"output": t.name, "max_abs": float(diff.max()), "psnr_db": _finite(psnr), "passed": bool(ok),
                     "floor": {"max_abs": tol.max_abs, "min_psnr_db": tol.min_psnr_db}})
    return {"outputs": rows, "passed": all(r["passed"] for r in rows)}


def _time(fn, inputs, runs: int) -> dict:
    """p50 of ``runs`` calls (after 3 warm-up calls, which also pay XLA's compile for this shape);
    each call copies the outputs back to the host, as a server does before replying."""
    import numpy as np
    import tensorflow as tf

    feeds = {k: tf.constant(v) for k, v in inputs.items()}

    def call():
        return [v.numpy() for v in fn(**feeds).values()]

    for _ in range(3):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    p50 = float(np.median(times))
    batch = len(next(iter(inputs.values())))
    return {"p50_ms": round(p50 * 1e3, 3), "images_per_s": round(batch / p50, 1), "runs": runs}


def _device(tf, gpus, device) -> dict:
    info = {"placement": device, "tensorflow": tf.__version__, "host": platform.node(), "gpus": []}
    for g in gpus:
        details = tf.config.experimental.get_device_details(g)
        info["gpus"].append({k: str(v) for k, v in details.items()})
    return info


def _plan(plan: dict) -> dict:
    return {"input_size": list(plan["size"]), "batches": list(plan["batches"]), "runs": plan["runs"]}


def _finite(x: float):
    return None if x == float("inf") else round(float(x), 2)


def _line(row: dict) -> str:
    t = "  ".join(f"b{b}: {v['p50_ms']} ms {v['images_per_s']} img/s" for b, v in row["timings"].items())
    worst = min((o["psnr_db"] or float("inf")) for o in row["parity"]["outputs"])
    return f"{row['variant']:<10} parity {'pass' if row['parity']['passed'] else 'FAIL'} (PSNR {worst} dB)  {t}"


if __name__ == "__main__":
    sys.exit(main())
