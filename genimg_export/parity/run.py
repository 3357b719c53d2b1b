"""The parity check: the same seeded inputs through every runner, compared with Keras.

One Row per target (backend × variant × signature) and output, with shape and
dtype checks, max/mean abs error, PSNR, SSIM, the fraction of values outside
the tolerance, and a verdict. Every target is run and every failure collected
before the result is returned; NaN/Inf and shape mismatches always fail, and a
missing tolerance entry in the spec is a failure (there is no loose default).

Example:
    >>> result = check(spec, keras_model, discover(spec, Path("out"), ["tflite"]), samples=8)
    >>> result.passed, [r.reason for r in result.rows if not r.passed]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genimg_export.artifacts.formats import FP32, runner_options
from genimg_export.artifacts.target import Target
from genimg_export.parity import metrics
from genimg_export.parity import task as parity_task
from genimg_export.parity.inputs import InputPlan
from genimg_export.runners import open_runner

BATCH = 4  # samples per runner call: > 1, so batch handling is checked too
PICTURES = 3  # samples kept per target for the contact sheet


@dataclass
class Row:
    """One backend output compared with the reference (the ``--json`` row)."""

    backend: str
    variant: str | None
    output: str
    shape_ok: bool
    max_abs: float | None
    mean_abs: float | None
    psnr_db: float | None
    ssim: float | None
    passed: bool
    reason: str | None
    signature: str = "serving_default"
    dtype_ok: bool = True
    frac_outside: float | None = None
    threshold: dict | None = None  # the rule applied (metrics.Threshold.to_json)
    sizes: list | None = None  # the (H, W) sizes this row ran at (a fixed-size export: its own)
    ran: bool = True  # False when the backend could not be opened or run (not in the JSON)

    @property
    def label(self) -> str:
        return self.backend if self.variant is None else f"{self.backend}/{self.variant}"

    def to_json(self) -> dict:
        return {k: _finite(v) for k, v in asdict(self).items() if k != "ran"}


@dataclass
class Result:
    """Everything one parity run found; ``pictures`` feeds the contact sheet."""

    model: str
    rows: list[Row]
    samples: int
    sizes: list
    task_metric: dict | None = None
    notes: list[str] = field(default_factory=list)
    pictures: dict = field(default_factory=dict)
    reference: str = "keras"  # what the rows are compared with: "keras" or "saved_model" (a user's SavedModel)
    tolerance_overrides: dict = field(default_factory=dict)  # parsed --tolerance values by label
    output_ranges: dict = field(default_factory=dict)  # --output-range: output name ("*": every image) -> [lo, hi]

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "reference": self.reference,
            "passed": self.passed,
            "rows": [r.to_json() for r in self.rows],
            "samples": self.samples,
            "sizes": self.sizes,
            "task_metric": self.task_metric,
            "notes": self.notes,
            "tolerance_overrides": self.tolerance_overrides,
            "output_ranges": self.output_ranges,
        }


def run_parity(
    model: str, artifacts: Path | None, backends: list[str] | None = None, *, samples: int = 8, seed: int = 0,
    npz: dict | None = None, input_range=(-1.0, 1.0), threads: int | None = None, weights=None,
    allow_unsafe: bool = False, servers: dict[str, str] | None = None, keras_model=None,
    tolerances: dict[str, dict] | None = None, output_ranges: dict[str, tuple[float, float]] | None = None,
    progress=None,
) -> Result:
    """Everything ``genimg-export parity`` does before printing: resolve the model,
    find the targets, make the inputs, check.

    Args:
        model: zoo name or path to a user's model.
        backends: None means keras plus every local backend found in ``artifacts``.
        keras_model: the reference model, if already loaded (else from ``weights``).
        tolerances: overrides by label (``metrics.parse_tolerances`` of ``--tolerance``).
        output_ranges: value ranges of outputs the model does not declare (a SavedModel's),
            by output name, "*" for every image output; images are then compared over them.
            They win over a range declared by the model and one recorded at export
            (``export --output-range``, read from the manifest of ``artifacts``).
        progress: called with a short line as each step starts (the CLI's spinner).
    """
    from genimg_export.runners.discover import discover, local_backends
    from genimg_export.zoo import loading

    spec = loading.get_spec(model, allow_unsafe)
    if backends is None:
        backends = ["keras", *(local_backends(spec, artifacts) if artifacts is not None else [])]
    targets = discover(spec, artifacts, backends, servers)
    plan = InputPlan(spec, samples, seed, npz=npz, recorded=recorded_calibration(spec, artifacts),
                     input_range=input_range)
    targets = [t for t in targets if plan.covers(t.signature)]
    progress = progress or (lambda line: None)
    if keras_model is None:
        progress(f"loading {spec.name}")
        keras_model = loading.load_model(spec, weights, allow_unsafe)
    options = {t.backend: runner_options(t.backend, threads) for t in targets}
    spec = _with_output_ranges(spec, output_ranges or {}, _recorded_ranges(spec, artifacts))
    result = check(spec, keras_model, targets, plan, options, tolerances, progress)
    result.output_ranges = {k: list(v) for k, v in (output_ranges or {}).items()}
    result.notes += _source_notes(spec, keras_model, targets) + _range_notes(spec)
    return result


def _source_notes(spec, keras_model, targets: list[Target]) -> list[str]:
    """Say so when artifacts were exported from other weights than the reference's."""
    from genimg_export.artifacts import manifest

    recorded = {t.source_sha256 for t in targets if t.source_sha256}
    if not recorded:
        return []
    ours = manifest.source_sha256(spec, keras_model)
    if recorded == {ours}:
        return []
    return [
        f"the artifacts were exported from other weights than the reference model (source_sha256"
        f" {', '.join(sorted(h[:12] for h in recorded))} != {ours[:12]}); pass the --weights they were exported from"
    ]


def recorded_calibration(spec, artifacts: Path | None) -> dict | None:
    """The calibration data a user model's int8 export recorded (manifest option
    ``calibration``: an .npz or a folder of images), if it still exists; else None."""
    if spec.source is None or artifacts is None or not (Path(artifacts) / "manifest.json").is_file():
        return None
    from genimg_export.artifacts import manifest
    from genimg_export.parity.inputs import load_npz

    for entry in manifest.load(Path(artifacts)):
        recorded = entry.options.get("calibration") if entry.model == spec.name else None
        if recorded and str(recorded).endswith(".npz") and Path(recorded).is_file():
            return load_npz(Path(recorded))
        if recorded and Path(recorded).is_dir():  # --calibration-dir: the user's images, not noise
            return _recorded_images(spec, Path(recorded), entry.options.get("calibration_input_range"))
    return None


def _recorded_images(spec, folder: Path, input_range=None) -> dict | None:
    """The images of a calibration folder as the export read them (None if they no longer read)."""
    from genimg_export.errors import GenimgError
    from genimg_export.zoo.user import with_calibration

    try:
        return with_calibration(spec, None, folder, input_range).calibration_inputs(10**6)
    except GenimgError:
        return None


def check(spec, keras_model, targets: list[Target], plan: InputPlan, options: dict | None = None,
          tolerances: dict[str, dict] | None = None, progress=None) -> Result:
    """Run every target on the plan's inputs and compare with the Keras model.

    Args:
        options: runner options by backend, e.g. {"tflite": {"num_threads": 2}}.
    """
    reference = _Reference(spec, keras_model)
    result = Result(spec.name, [], plan.samples, plan.describe_sizes(), reference=reference_kind(spec),
                    tolerance_overrides=dict(tolerances or {}))
    task = parity_task.for_spec(spec) if plan.npz is None else None
    if task is not None and any(parity_task.applies_to(t.backend, t.variant) for t in targets):
        result.task_metric = {"name": task.name, "keras": reference.task_score(task, None), "rows": []}
    for i, target in enumerate(targets, 1):
        if progress:
            progress(f"{target.backend} {target.variant or ''} ({i}/{len(targets)})")
        result.rows.extend(
            _check_target(spec, target, plan, reference, (options or {}).get(target.backend, {}), result)
        )
    return result


class _Reference:
    """Keras outputs per (signature, size), computed once."""

    def __init__(self, spec, model):
        self.spec, self.model, self._cache = spec, model, {}

    def __call__(self, signature: str, size, inputs) -> dict[str, np.ndarray]:
        key = (signature, size)
        if key not in self._cache:
            runner = open_runner("keras", None, self.spec, signature, model=self.model)
            self._cache[key] = _batched(runner, inputs, BATCH)
        return self._cache[key]

    def task_score(self, task, size) -> float:
        key = ("task", size)
        if key not in self._cache:
            runner = open_runner("keras", None, self.spec, model=self.model)
            self._cache[key] = round(task.score(runner.run, size), 3)
        return self._cache[key]


def _check_target(
    spec, target: Target, plan: InputPlan, reference: _Reference, options: dict, result: Result
) -> list[Row]:
    sig = spec.signature(target.signature)
    refs: dict[str, list] = {t.name: [] for t in sig.outputs}
    outs: dict[str, list] = {t.name: [] for t in sig.outputs}
    try:
        runner = _open(spec, target, reference, options)
        sizes = plan.sizes_for(target)
        try:
            for size in sizes:
                x = plan.inputs(sig.name, size)
                want = reference(sig.name, size, x)
                # keras re-runs the reference one sample at a time: it must not depend on the batch
                got = _batched(runner, x, 1 if target.backend == "keras" else BATCH)
                for name in refs:
                    refs[name].append(want[name])
                    outs[name].append(got.get(name))
            _task_score(result, target, runner, spec, reference)
        finally:
            runner.close()
    except Exception as e:  # every backend failure becomes a failed row, never a crash
        return [_failed(target, t.name, _describe(e), ran=False) for t in sig.outputs]
    if sig.name == spec.default_signature.name:
        first = plan.first_size(sig.name)
        i = sizes.index(first) if first in sizes else 0  # a fixed-size export: its own size
        _keep_pictures(result, sig, target.label, plan, sizes[i],
                       {k: v[i] for k, v in refs.items()}, {k: v[i] for k, v in outs.items()})
    override = result.tolerance_overrides.get(target.label)
    rows = [_row(spec, target, t, refs[t.name], outs[t.name], override) for t in sig.outputs]
    for row in rows:
        row.sizes = [list(s) for s in sizes if s is not None] or None
    return rows


def _task_score(result: Result, target: Target, runner, spec, reference: _Reference) -> None:
    """Score the task metric for a quantized target of the default signature."""
    if result.task_metric is None or target.signature != spec.default_signature.name:
        return
    if not parity_task.applies_to(target.backend, target.variant):
        return
    task = parity_task.for_spec(spec)
    size = tuple(target.fixed_size) if target.fixed_size else None
    try:
        value = round(task.score(runner.run, size), 3)
    except Exception as e:  # reported, not fatal: the parity rows carry the verdict
        value, note = None, _describe(e)
    else:
        note = None
    row = {"backend": target.backend, "variant": target.variant, "value": value}
    if value is not None:
        keras = reference.task_score(task, size)
        row.update(keras=keras, delta=round(value - keras, 3))
    if note:
        row["error"] = note
    result.task_metric["rows"].append(row)


def _open(spec, target: Target, reference: _Reference, options: dict):
    if target.backend == "keras":
        options = {**options, "model": reference.model}
    if target.backend == "v2":  # each ONNX variant is its own Triton model
        from genimg_export.artifacts.layout import triton_name

        options = {**options, "model_name": triton_name(spec.name, target.variant)}
    return open_runner(target.backend, target.artifact, spec, target.signature, **options)


def _batched(runner, inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Run in batches. Each call gets its own copy of the inputs: the plan's arrays are shared by
    every target and the cached reference, and a backend that writes into the buffers it is
    handed (zero-copy paths of TF, onnxruntime, LiteRT) must not change what later targets see."""
    n = len(next(iter(inputs.values())))
    parts = [runner.run({k: np.array(v[i : i + batch]) for k, v in inputs.items()}) for i in range(0, n, batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _row(spec, target: Target, tensor, refs: list, outs: list, override: dict | None = None) -> Row:
    """Compare one output over all sizes and decide the verdict (``override``: ``--tolerance`` bounds)."""
    tol = FP32 if target.backend == "keras" else spec.tolerances.get((target.backend, target.variant))
    reasons = []
    if any(o is None for o in outs):
        return _failed(target, tensor.name, "output missing", ran=False)
    bad_shape = [(o.shape, r.shape) for o, r in zip(outs, refs) if o.shape != r.shape]
    dtype_ok = all(o.dtype == np.dtype(tensor.dtype) for o in outs)
    if bad_shape:
        got, want = bad_shape[0]
        row = _failed(target, tensor.name, f"shape {got} != reference {want}")
        row.dtype_ok = dtype_ok
        return row
    nonfinite = sum(int(np.size(o) - np.isfinite(o).sum()) for o in outs)
    if nonfinite:
        reasons.append(f"{nonfinite} NaN/Inf values")
    if not dtype_ok:
        reasons.append(f"dtype {outs[0].dtype}, expected {tensor.dtype}")
    reference = np.concatenate([np.ravel(r) for r in refs])
    range_from = spec.extra.get("range_from", {}).get(tensor.name)
    threshold = metrics.threshold_for(tensor, tol, override, reference, range_from)
    peak = metrics.peak(refs)
    data_range = threshold.data_range if threshold and threshold.data_range else metrics.data_range_of(None, reference)
    allowed = threshold.allowed(peak) if threshold else None
    cmp = metrics.compare(refs, [np.nan_to_num(o, nan=1e6) for o in outs], data_range, allowed, tensor.is_image)
    if threshold is None:
        reasons.append(f"no tolerance for {target.label} in the spec of '{spec.name}'"
                       f" (add one to its tolerances, or pass --tolerance {target.label}=...)")
    else:
        reasons += threshold.reasons(cmp, peak)
    return Row(
        target.backend, target.variant, tensor.name, True, cmp.max_abs, cmp.mean_abs, cmp.psnr_db, cmp.ssim,
        passed=not reasons, reason="; ".join(reasons) or None, signature=target.signature,
        dtype_ok=dtype_ok, frac_outside=cmp.frac_outside, threshold=threshold.to_json() if threshold else None,
    )


def _with_output_ranges(spec, ranges: dict, recorded: dict[str, set]):
    """The spec with the range each output is judged over, and where it came from in
    ``extra["range_from"]`` (by output name): ``ranges`` (the command line) first, then the
    model's own, then the one ``recorded`` at export; none: the reference's spread.
    An unknown output name is an error."""
    import dataclasses

    from genimg_export.errors import InvalidInputError

    names = [t.name for s in spec.signatures for t in s.outputs]
    unknown = [n for n in ranges if n != "*" and n not in names]
    if unknown:
        raise InvalidInputError(f"--output-range: model '{spec.name}' has no output {unknown[0]!r}; outputs: {names}")
    range_from = {}

    def judged(t):
        value = ranges.get(t.name, ranges.get("*") if t.is_image else None)
        if value:
            range_from[t.name] = "--output-range"
            return dataclasses.replace(t, value_range=tuple(value))
        if t.value_range:
            range_from[t.name] = "declared by the model"
        elif t.name in recorded:
            range_from[t.name] = "recorded at export"
            return dataclasses.replace(t, value_range=_one_recorded(t.name, recorded[t.name]))
        return t

    judged_spec = spec.with_outputs(judged)  # fills range_from
    return dataclasses.replace(judged_spec, extra={**spec.extra, "range_from": range_from})


def as_exported(spec, artifacts: Path | None):
    """The spec with the output ranges its exports recorded (``export --output-range``), so
    every tool judges a user's images over the same range parity does."""
    return _with_output_ranges(spec, {}, _recorded_ranges(spec, artifacts))


def _recorded_ranges(spec, artifacts: Path | None) -> dict[str, set]:
    """{output name: the ranges its exports recorded} for a user's model, from the manifest
    entries' signatures (``export --output-range`` puts them there); the zoo declares its own."""
    if spec.source is None or artifacts is None or not (Path(artifacts) / "manifest.json").is_file():
        return {}
    from genimg_export.artifacts import manifest

    found: dict[str, set] = {}
    for entry in manifest.load(Path(artifacts)):
        outputs = [t for sig in entry.signatures.values() for t in sig["outputs"]] if entry.model == spec.name else []
        for t in outputs:
            if t.get("value_range"):
                found.setdefault(t["name"], set()).add(tuple(t["value_range"]))
    return found


def _one_recorded(name: str, ranges: set) -> tuple:
    from genimg_export.errors import InvalidInputError

    if len(ranges) > 1:  # exports made with different --output-range: only the user knows which is right
        raise InvalidInputError(f"the exports record different ranges for output {name!r}:"
                                f" {sorted(list(r) for r in ranges)}; pass --output-range {name}=LOW,HIGH to choose")
    return next(iter(ranges))


def _range_notes(spec) -> list[str]:
    """Say which images were judged over a range recorded at export, and which over their spread."""
    outputs = {t.name: t for s in spec.signatures for t in s.outputs}
    range_from = spec.extra.get("range_from", {})
    recorded = [f"{n} {list(t.value_range)}" for n, t in outputs.items() if range_from.get(n) == "recorded at export"]
    spread = [n for n, t in outputs.items() if t.is_image and n not in range_from]
    notes = [f"images judged over the range recorded at export: {', '.join(recorded)}"] if recorded else []
    if spread:
        notes.append(f"{', '.join(spread)}: no value range declared, so images are judged over the reference's own"
                     " spread; declare it with --output-range (at export, or here)")
    return notes


def reference_kind(spec) -> str:
    """What parity compares with: "saved_model" for a user's SavedModel directory, else "keras"."""
    source = spec.source
    return "saved_model" if source is not None and Path(source).is_dir() else "keras"


def _failed(target: Target, output: str, reason: str, ran: bool = True) -> Row:
    return Row(target.backend, target.variant, output, False, None, None, None, None, False, reason,
               target.signature, False, ran=ran)


def _keep_pictures(result: Result, sig, label: str, plan: InputPlan, size, refs: dict, outs: dict) -> None:
    """Keep the first few samples of every output, with the reference at the same
    size (a fixed-size export is drawn at its own size)."""
    for tensor in sig.outputs:
        pics = result.pictures.setdefault(tensor.name, {})
        ref, out = refs[tensor.name][:PICTURES], outs[tensor.name]
        if "reference" not in pics:
            pics.update(reference=ref, rows={}, size=size, input=plan.image_input(sig, size, PICTURES))
        if out is not None and out.shape[1:] == refs[tensor.name].shape[1:]:
            pics["rows"][label] = {"reference": ref, "output": out[:PICTURES], "size": size}


def _describe(e: BaseException) -> str:
    """One line: a domain error's own message, else the exception type and first line."""
    from genimg_export.errors import GenimgError

    lines = str(e).strip().splitlines()
    text = lines[0][:300] if lines else ""
    return text if isinstance(e, GenimgError) else f"{type(e).__name__}: {text}"


def _finite(v):
    """JSON has no inf/nan: the PSNR of identical outputs (infinite) is written as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v
