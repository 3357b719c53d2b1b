"""The format table owns what a format is: its variants' names appear nowhere else in the
package, its layout round-trips, and an option a variant does not take is refused."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import genimg_export
from genimg_export.artifacts import layout
from genimg_export.artifacts.formats import FORMATS, check_options, default_tolerances, options_for, runner_options
from genimg_export.errors import InvalidInputError

PACKAGE = Path(genimg_export.__file__).parent
FORMAT_LAYER = PACKAGE / "artifacts"
VARIANT_NAMES = ("fp16", "dynamic", "int8")


def _variant_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in VARIANT_NAMES
    ]


def test_variant_names_are_spelled_only_in_the_format_layer():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if FORMAT_LAYER not in path.parents
             for hit in _variant_literals(path)]
    assert not found, "variant names outside genimg_export/artifacts/:\n" + "\n".join(found)


def test_the_variant_name_scan_finds_a_literal(tmp_path):
    """The scan above is not vacuous: a module that spells a variant is caught."""
    bad = PACKAGE / "_probe_for_test.py"
    try:
        bad.write_text('QUANT = ("fp32", "int8")\n')
        assert _variant_literals(bad) == ["genimg_export/_probe_for_test.py:1: 'int8'"]
    finally:
        bad.unlink()


@pytest.mark.parametrize("fmt,variant", [(f.name, v.name) for f in FORMATS.values() for v in f.variants])
@pytest.mark.parametrize("signature", ["serving_default", "encode"])
def test_layout_round_trips(fmt, variant, signature):
    row = FORMATS[fmt]
    place = layout.Place(fmt, variant, "vae", signature if row.per_signature else None, 3 if row.versioned else None)
    rel = layout.relative_path(place)
    assert rel.parts[0] == row.folder
    assert layout.parse(rel, "vae") == place
    assert layout.relative_path(layout.parse(rel, "vae")) == rel


def test_layout_parse_refuses_paths_no_row_writes():
    for rel in ("tflite/vaex.fp32.tflite", "onnx/vae.fp32.onnx", "tflite/vae.tflite", "tflite/vae.int4.tflite",
                "serving/vae/latest", "onnx/other.onnx", "notes/vae.txt"):
        assert layout.parse(Path(rel), "vae") is None, rel


def test_layout_find_reads_an_export_directory(tmp_path):
    placed = [layout.Place(f.name, v.name, "m", "serving_default" if f.per_signature else None,
                           1 if f.versioned else None) for f in FORMATS.values() for v in f.variants]
    for place in placed:
        path = tmp_path / layout.relative_path(place)
        path.parent.mkdir(parents=True, exist_ok=True)
        if FORMATS[place.format].versioned:
            path.mkdir()
            (path / FORMATS[place.format].marker).write_bytes(b"")
        else:
            path.write_bytes(b"")
    (tmp_path / "tflite" / ".m.fp32.tflite.tmp-1").write_bytes(b"")  # a half-written file
    assert [p for p, _ in layout.find(tmp_path, "m")] == placed


def test_an_option_a_variant_does_not_take_is_refused():
    first, other = FORMATS["tflite"].default.name, FORMATS["tflite"].variants[-1]
    assert "int8_io" in other.options
    with pytest.raises(InvalidInputError) as e:
        options_for("tflite", first, {"int8_io": True})
    assert str(e.value) == f"tflite {first} does not take --int8-io; it accepts: --input-size"
    assert options_for("tflite", other.name, {"int8_io": True, "opset": None}) == {"int8_io": True}
    with pytest.raises(InvalidInputError, match="--opset must be between 13 and 18, got 12"):
        options_for("onnx", FORMATS["onnx"].default.name, {"opset": 12})


def test_several_variants_refuse_only_an_option_none_of_them_takes():
    pairs = [("tflite", v) for v in FORMATS["tflite"].variant_names]
    check_options(pairs, {"int8_io": True, "calibration_samples": 50})
    with pytest.raises(InvalidInputError, match="takes --opset"):
        check_options(pairs, {"opset": 13})


def test_export_variant_refuses_an_option_before_any_work(tmp_path):
    from harness.tiny import tiny_spec

    from genimg_export.exporters import export_variant

    spec, model = tiny_spec()
    with pytest.raises(InvalidInputError, match="does not take --int8-io"):
        export_variant(spec, model, tmp_path, "tflite", FORMATS["tflite"].default.name, None, int8_io=True)
    assert not list(tmp_path.iterdir())


def test_cli_refuses_an_option_the_variant_does_not_take(cli, tmp_path):
    result = cli("tflite", "--model", "srgan", "--out", tmp_path, "--quantize", "fp32", "--int8-io")
    assert result.exit_code == 2
    assert result.output.strip() == "error: tflite fp32 does not take --int8-io; it accepts: --input-size"
    assert not list(tmp_path.iterdir())


def test_cli_onnx_none_is_a_deprecated_alias_of_fp32(cli, tmp_path):
    """Refused for the same reason as fp32 (so no export runs), after the one-line note."""
    result = cli("onnx", "--model", "srgan", "--out", tmp_path, "--quantize", "none", "--calibration-samples", "5")
    assert result.exit_code == 2
    assert "warning: --quantize none is deprecated; use --quantize fp32" in result.output
    assert "onnx fp32 does not take --calibration-samples" in result.output


def test_cli_choices_come_from_the_table():
    from genimg_export.cli.export_commands import OnnxQuant, TFLiteQuant

    assert [c.value for c in TFLiteQuant] == [*FORMATS["tflite"].variant_names, "all"]
    assert [c.value for c in OnnxQuant] == [*FORMATS["onnx"].variant_names, "none", "all"]


def test_runner_options_and_tolerances_come_from_the_rows():
    assert runner_options("tflite", 2) == {"num_threads": 2} and runner_options("onnx", 2) == {"num_threads": 2}
    assert runner_options("saved_model", 2) == {} and runner_options("keras", 2) == {}
    assert runner_options("tflite", None) == {}
    table = default_tolerances()
    for row in FORMATS.values():
        for v in row.variants:
            assert all(table[(b, v.name)] is v.tolerance for b in (row.name, *row.served_by))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_smoke_run_through_the_rows_runner_refuses_nan_and_writes_nothing(tmp_path, fmt):
    """A model whose output is NaN converts fine; the pipeline's smoke run (the row's runner
    on the temporary file) refuses it at both sizes, and nothing is left in place."""
    import keras
    from harness.tiny import tiny_spec

    from genimg_export.errors import ExportError
    from genimg_export.exporters import export_variant
    from genimg_export.exporters.saved_model import SavedModelSource

    x = keras.Input((None, None, 3), name="x")
    y = keras.layers.Lambda(lambda t: keras.ops.log(-1.0 - keras.ops.abs(t)), name="y")(x)
    spec, _ = tiny_spec("nan")
    model = keras.Model(x, y)
    with SavedModelSource(spec, model) as source, pytest.raises(ExportError) as e:
        export_variant(spec, model, tmp_path, fmt, FORMATS[fmt].default.name, source)
    assert "contains NaN or Inf" in str(e.value) and "at the fixed 16x16" in str(e.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing written"


def test_discovery_without_a_manifest_finds_what_the_manifest_lists(tmp_path):
    """The layout's inverse: every artifact of every row is found from the file names alone,
    as the same targets (backend, variant, signature, path) the manifest gives."""
    import shutil

    from harness.tiny import tiny_spec

    from genimg_export.exporters import run_all
    from genimg_export.runners.discover import discover, local_backends

    spec, model = tiny_spec()
    outcomes = run_all(spec, model, tmp_path / "a")
    assert all(o.ok for o in outcomes), [o.error or o.skipped for o in outcomes]
    # version 2 (explicit: a re-run of the same weights and options adds none)
    run_all(spec, model, tmp_path / "a", pairs=[("saved_model", FORMATS["saved_model"].default.name)], version=2)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "manifest.json").unlink()
    backends = local_backends(spec, tmp_path / "a")
    assert backends == [f.runner for f in FORMATS.values()] == local_backends(spec, tmp_path / "b")

    def key(out):
        return [(t.backend, t.variant, t.signature, Path(t.artifact).relative_to(out))
                for t in discover(spec, out, backends)]

    listed = key(tmp_path / "a")
    assert len(listed) == len(outcomes) and ("saved_model", "fp32", "serving_default", Path("serving/tiny/2")) in listed
    assert key(tmp_path / "b") == listed
