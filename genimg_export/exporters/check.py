"""Prove a converted model loads in its own runner and runs one sample.

The pipeline reports ✓ only after this: one seeded sample per signature, at a
size other than the canonical one for dynamic-shape models (so a model that
silently ignores new H x W is caught), must give every declared output with
the expected shape and no NaN/Inf. Numeric closeness to Keras is the parity
suite's job; this only decides "works" and "needs the fixed-size fallback".
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings

import numpy as np

from genimg_export.errors import ExportError
from genimg_export.zoo.spec import ModelSpec, Signature


def probe_size(spec: ModelSpec, fixed_size=None) -> tuple[int, int]:
    """The H x W a smoke run uses: ``fixed_size``, else a small non-square, non-canonical size."""
    if fixed_size:
        return tuple(fixed_size)
    base = max(spec.spatial_multiple, 8)
    return (base * 2, base * 3)


def expected_shape(spec: ModelSpec, tensor, n: int, size) -> tuple[int | None, ...]:
    """Declared shape with the batch and dynamic H x W (input size x scale) filled in."""
    dims = list(tensor.shape)
    if tensor.is_image:
        dims[0] = dims[0] if dims[0] is not None else size[0] * spec.scale
        dims[1] = dims[1] if dims[1] is not None else size[1] * spec.scale
    return (n, *dims)


def sample(spec: ModelSpec, sig: Signature, size, n: int = 1) -> dict[str, np.ndarray]:
    inputs = spec.sample_inputs(n, seed=0, signature=sig.name, size=size)
    return {t.name: np.asarray(inputs[t.name]).astype(t.dtype) for t in sig.inputs}


def verify_outputs(spec: ModelSpec, sig: Signature, outputs: dict, size, what: str, n: int = 1) -> None:
    """Raise ExportError unless ``outputs`` has every declared name, shape and finite values."""
    missing = [t.name for t in sig.outputs if t.name not in outputs]
    if missing:
        raise ExportError(f"{what}: signature '{sig.name}' lacks outputs {missing}; got {sorted(outputs)}")
    for t in sig.outputs:
        value = np.asarray(outputs[t.name])
        want = expected_shape(spec, t, n, size)
        if any(w is not None and w != g for w, g in zip(want, value.shape)) or len(want) != value.ndim:
            raise ExportError(
                f"{what}: output '{t.name}' of '{sig.name}' has shape {list(value.shape)} for input"
                f" size {list(size)}; expected {list(want)}"
            )
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise ExportError(f"{what}: output '{t.name}' of '{sig.name}' contains NaN or Inf")


def smoke_run(spec: ModelSpec, backend: str, path, signatures, size, n: int = 1) -> None:
    """Open ``path`` with ``backend``'s runner and verify ``n`` samples (one batch) of each of ``signatures``."""
    from genimg_export.runners import open_runner

    results = []
    with quiet_native_output():  # LiteRT prints its delegate's banner straight to fd 2
        for sig in signatures:
            with open_runner(backend, path, spec, sig.name) as runner:
                results.append((sig, runner.run(sample(spec, sig, size, n))))
    for sig, outputs in results:
        verify_outputs(spec, sig, outputs, size, f"{backend} smoke run", n)


def reason(e: BaseException) -> str:
    """A short, informative summary of a converter or runtime error (op/layer names kept)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # Keras colours its messages
    flex = _needs_flex(text)
    if flex:
        return flex
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keep = []
    for i, line in enumerate(lines):
        if "encountered when calling" in line and i + 1 < len(lines):
            keep.append(f"{line} {lines[i + 1].split('. ')[0]}")  # the layer, then the cause
        elif " op" in line.lower() or "error:" in line.lower():
            keep.append(line)
    summary = "; ".join(dict.fromkeys((keep or lines)[:3])) or type(e).__name__
    if isinstance(e, ExportError):
        return summary[:500]
    return f"{type(e).__name__}: {summary[:500]}"


def fallback_failed(what: str, error: BaseException, dynamic_error: BaseException, fixed) -> ExportError:
    """Neither the dynamic-size nor the fixed-size conversion worked: say both, once if equal."""
    at_fixed, dynamic = reason(error), reason(dynamic_error)
    size = f"{fixed[0]}x{fixed[1]}"
    if at_fixed == dynamic:
        return ExportError(f"{what}: {dynamic} (with dynamic H x W and at the fixed {size})")
    return ExportError(f"{what}: with dynamic H x W: {dynamic}; at the fixed {size}: {at_fixed}")


def _needs_flex(text: str) -> str | None:
    """TFLite's MLIR error, reduced to the ops that need TF Select and the layers they sit in."""
    ops = re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)
    if not ops:
        return None
    layers = re.findall(r'error: loc\(callsite\(fused\["\w+:", "([^"@]+)', text)
    where = f" in {', '.join(dict.fromkeys(layers))}" if layers else ""
    return f"op {', '.join(dict.fromkeys(ops))} is not a TFLite builtin (needs TF Select/Flex){where}"


@contextlib.contextmanager
def quiet_native_output():
    """Silence what TFLite's C++ code prints straight to fds 1 and 2 ("fully_quantize: 0, ...",
    "Created TensorFlow Lite XNNPACK delegate") and its deprecation warning, so a
    command's output is its own log lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
