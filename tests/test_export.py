"""Every zoo model × every row of the format table: the artifact exists, loads in its own
runtime, declares the spec's I/O names, dtypes and dynamic dims, and its manifest entry
(sha256, bytes) matches the file.

srgan runs in the default suite; the rest of the zoo is marked slow (each model is
exported once per process by tests/harness/zoo_exports.py, shared with the parity tests).
"""

from __future__ import annotations

import numpy as np
import pytest
from harness.artifact_checks import CHECKS, check_artifact, sha256
from harness.zoo_exports import exported

from genimg_export.artifacts import manifest
from genimg_export.artifacts.formats import FORMATS, format_variants
from genimg_export.runners import BACKENDS
from genimg_export.zoo import registry

DEFAULT_MODEL = "srgan"

MATRIX = [
    pytest.param(name, fmt, variant, id=f"{name}-{fmt}-{variant}",
                 marks=[] if name == DEFAULT_MODEL else [pytest.mark.slow])
    for name in registry.names()
    for fmt, variant in format_variants()
]


def test_format_table_rows_name_an_exporter_and_a_runner():
    for fmt in FORMATS.values():
        assert callable(fmt.convert_fn()), fmt.name
        assert fmt.runner in BACKENDS, f"{fmt.name}: no runner '{fmt.runner}'"
        assert len(set(fmt.variant_names)) == len(fmt.variants) and not fmt.default.calibrated


def _artifacts(name, fmt, variant):
    ex = exported(name)
    outcome = ex.outcomes[(fmt, variant)]
    assert outcome.ok, f"{name} {fmt}/{variant} failed: {outcome.error or outcome.skipped}"
    assert outcome.artifacts
    return ex, outcome.artifacts


@pytest.mark.parametrize("name,fmt,variant", MATRIX)
def test_artifact_loads_with_declared_io_and_manifest_entry(name, fmt, variant):
    ex, artifacts = _artifacts(name, fmt, variant)
    entries = {e.path: e for e in manifest.load(ex.out)}
    for artifact in artifacts:
        path = ex.out / artifact.path
        assert path.exists()
        assert entries[artifact.path] == artifact
        assert (artifact.model, artifact.format, artifact.variant) == (name, fmt, variant)
        check_artifact(ex.spec, artifact, ex.out)


def test_checks_cover_every_format_of_the_table():
    assert set(CHECKS) == set(FORMATS)


def test_manifest_sha256_check_fails_on_a_changed_file(tmp_path):
    """The sha256 comparison above is not vacuous: one flipped byte changes it."""
    ex, (artifact,) = _artifacts(DEFAULT_MODEL, "tflite", "fp32")
    copy = tmp_path / "copy.tflite"
    data = bytearray((ex.out / artifact.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert sha256(copy) != artifact.sha256


def test_int8_srgan_runs_and_stays_close_to_fp32():
    """Full-integer TFLite of srgan really runs (not NaN, not a constant image)."""
    from ai_edge_litert.interpreter import Interpreter

    ex = exported(DEFAULT_MODEL)
    lr = ex.spec.sample_inputs(1, seed=3, size=(20, 28))["lr"]
    outs = {}
    for variant in ("fp32", "int8"):
        (artifact,) = ex.outcomes[("tflite", variant)].artifacts
        runner = Interpreter(model_path=str(ex.out / artifact.path)).get_signature_runner("serving_default")
        outs[variant] = runner(lr=lr)["hr"]
    assert outs["int8"].shape == (1, 80, 112, 3) and np.all(np.isfinite(outs["int8"]))
    assert outs["int8"].std() > 0.01
    assert np.abs(outs["int8"] - outs["fp32"]).mean() < 0.1


def test_size_targets_recorded_for_srgan():
    """int8 / dynamic TFLite and int8 ONNX are much smaller than fp32 (README target: <= 30%)."""
    ex = exported(DEFAULT_MODEL)
    size = {k: sum(a.bytes for a in o.artifacts) for k, o in ex.outcomes.items() if o.ok}
    for small, big in ((("tflite", "int8"), ("tflite", "fp32")), (("tflite", "dynamic"), ("tflite", "fp32")),
                       (("onnx", "int8"), ("onnx", "fp32"))):
        assert size[small] < 0.4 * size[big], f"{small}: {size[small]} vs {big}: {size[big]}"


def test_a_model_that_cannot_take_dynamic_sizes_is_exported_at_the_canonical_size(tmp_path):
    """Keras' bilinear UpSampling2D cannot be traced with None H x W: every format falls back to
    spec.canonical_size, records it with the reason, and declares fixed dims."""
    import dataclasses

    import keras
    from harness.tiny import tiny_spec

    from genimg_export.exporters import run_all

    x = keras.Input((None, None, 3), name="x")
    y = keras.layers.UpSampling2D(2, interpolation="bilinear", name="y")(keras.layers.AveragePooling2D(2)(x))
    spec = dataclasses.replace(tiny_spec("bilinear")[0], spatial_multiple=2)
    pairs = [("saved_model", "fp32"), ("tflite", "fp32"), ("onnx", "fp32")]
    outcomes = run_all(spec, keras.Model(x, y), tmp_path, pairs=pairs)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for artifact in (a for o in outcomes for a in o.artifacts):
        assert artifact.fixed_size == list(spec.canonical_size)
        assert "UpSampling2D" in artifact.options["fixed_size_reason"]
        check_artifact(spec, artifact, tmp_path)
