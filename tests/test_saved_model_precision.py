"""Reduced-precision and XLA SavedModels (issue 19): the format table owns the variants,
each is exported with float32 I/O under its own served name, passes parity against the
Keras model with its own floor (and fails the fp32 one), and the local server serves it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness.tiny import tiny_spec
from test_formats import PACKAGE, _variant_literals

from genimg_export.artifacts.formats import FORMATS, format_variants, opt_in_variants
from genimg_export.errors import ExportError, InvalidInputError

ROW = FORMATS["saved_model"]
REDUCED = [v for v in ROW.variants if v.compute_dtype]


def test_the_row_owns_the_precision_variants_and_their_floors():
    assert ROW.default.compute_dtype is None and not ROW.default.opt_in
    assert {v.compute_dtype for v in REDUCED} == {"bfloat16", "mixed_float16"}
    for v in REDUCED:
        assert v.opt_in and v.hosts and v.reduced_precision
        assert v.tolerance.min_psnr_db and v.tolerance.reason  # looser than fp32: says why
        assert "xla" in v.options and "version" in v.options


def test_all_makes_opt_in_variants_only_when_asked():
    made = {v for f, v in format_variants() if f == "saved_model"}
    assert made == {ROW.default.name} and set(opt_in_variants("saved_model")) == {v.name for v in REDUCED}
    names = [v.name for v in REDUCED]
    assert format_variants({"saved_model": names[::-1]})[:2] == [("saved_model", n) for n in names]  # row order
    with pytest.raises(InvalidInputError, match="did you mean"):
        format_variants({"saved_model": [names[0][:-1] + "x"]})


def test_precision_names_are_spelled_only_in_the_format_layer():
    import test_formats as t

    names = tuple(v.name for v in REDUCED)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "artifacts" not in path.parents:
            saved, t.VARIANT_NAMES = t.VARIANT_NAMES, names
            try:
                found += _variant_literals(path)
            finally:
                t.VARIANT_NAMES = saved
    assert not found, found


def test_a_model_that_cannot_be_rebuilt_is_refused_in_one_line():
    from genimg_export.exporters import precision

    class Loaded:  # what zoo.user makes of a SavedModel directory
        trackable = object()

    with pytest.raises(ExportError, match="not a Keras functional or Sequential model"):
        precision.under_policy(Loaded(), "bfloat16")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from genimg_export.exporters import run_all

    spec, model = tiny_spec()
    out = tmp_path_factory.mktemp("precision")
    pairs = [(ROW.name, v.name) for v in ROW.variants]
    outcomes = run_all(spec, model, out, pairs, xla=True)
    assert [o.error for o in outcomes] == [None] * len(pairs)
    return spec, model, out, {o.variant: o.artifacts[0] for o in outcomes}


def test_each_variant_is_a_float32_io_savedmodel_under_its_own_name(exported):
    import tensorflow as tf

    from genimg_serving.configs import read_model_config

    spec, _, out, artifacts = exported
    served = {c.name for c in read_model_config(out / "serving" / "models.config")}
    assert served == {ROW.served_name(spec.name, v.name) for v in ROW.variants}
    for v in ROW.variants:
        a = artifacts[v.name]
        assert Path(a.path).parts[1] == ROW.served_name(spec.name, v.name) == a.options["served_as"]
        assert a.options["hosts"] == list(v.hosts) and a.options.get("compute_dtype") == v.compute_dtype
        assert "per input shape" in a.options["xla"]
        fn = tf.saved_model.load(str(out / a.path)).signatures["serving_default"]
        assert fn.structured_input_signature[1]["x"].dtype == tf.float32
        assert fn.structured_outputs["y"].dtype == tf.float32
        assert _xla_marked(fn.graph)


def _xla_marked(graph) -> bool:
    """Whether some function under the signature must be compiled by XLA."""
    fdefs = graph.as_graph_def().library.function
    return any(f.attr["_XlaMustCompile"].b for f in fdefs)


def _parity(spec, model, out, tolerances=None):
    from genimg_export.parity.inputs import InputPlan
    from genimg_export.parity.run import check
    from genimg_export.runners.discover import discover

    return check(spec, model, discover(spec, out, ["saved_model"]), InputPlan(spec, 8, 0), None, tolerances)


def test_parity_passes_each_floor_and_the_reduced_ones_fail_the_fp32_floor(exported):
    spec, model, out, _ = exported
    result = _parity(spec, model, out)
    assert {r.variant for r in result.rows} == set(ROW.variant_names) and result.passed, result.rows
    strict = {f"saved_model/{v.name}": {"max_abs": 1e-6} for v in REDUCED}  # as --tolerance parses it
    failed = {r.variant for r in _parity(spec, model, out, strict).rows if not r.passed}
    assert failed == {v.name for v in REDUCED}  # the floors are what lets them pass


def test_the_local_server_serves_every_variant(exported):
    from harness.serving import start_server

    from genimg_serving.client import Client
    from genimg_serving.configs import read_model_config

    spec, model, out, _ = exported
    x = spec.sample_inputs(2, seed=3)["x"]
    want = np.asarray(model(x))
    server = start_server(read_model_config(out / "serving" / "models.config"), rest_port=None)
    try:
        client = Client(f"127.0.0.1:{server.grpc_port}")
        for v in ROW.variants:
            got = client.predict(ROW.served_name(spec.name, v.name), {"x": x})["y"]
            assert got.dtype == np.float32 and np.abs(got - want).max() < 0.05, v.name
    finally:
        server.stop()


def test_cli_precision_and_xla_write_a_served_bf16_savedmodel(cli, tmp_path):
    bf16 = next(v for v in REDUCED if v.compute_dtype == "bfloat16").name
    result = cli("saved-model", "--model", "dcgan", "--out", tmp_path, "--precision", bf16, "--xla")
    assert result.exit_code == 0, result.output
    served = ROW.served_name("dcgan", bf16)
    assert f"serving/{served}/1" in result.output
    assert (tmp_path / "serving" / served / "1" / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "serving"]  # no TFLite/ONNX
    assert not (tmp_path / "serving" / "dcgan").exists()  # fp32 not made unless asked
    assert f'name: "{served}"' in (tmp_path / "serving" / "models.config").read_text()


def test_cli_choices_come_from_the_table_and_bad_names_are_one_line(cli, tmp_path):
    helped = cli("all", "--help").output
    assert all(n in helped for n in ROW.variant_names)
    bad = cli("saved-model", "--model", "dcgan", "--out", tmp_path / "a", "--precision", "int8")
    assert bad.exit_code == 2 and "int8" in bad.output
    typo = cli("all", "--model", "dcgan", "--out", tmp_path / "b", "--saved-model-variants", f"{ROW.default.name},bf61")
    assert typo.exit_code == 2 and "did you mean 'bf16'" in typo.output and "Traceback" not in typo.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_xla_with_an_input_size_is_one_static_shape(cli, tmp_path):
    import tensorflow as tf

    result = cli("saved-model", "--model", "srgan", "--out", tmp_path, "--xla", "--input-size", "32x32", "--batch", "4")
    assert result.exit_code == 0, result.output
    assert "fixed 32x32" in result.output
    fn = tf.saved_model.load(str(tmp_path / "serving" / "srgan" / "1")).signatures["serving_default"]
    assert fn.structured_input_signature[1]["lr"].shape.as_list() == [4, 32, 32, 3]
