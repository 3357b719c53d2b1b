"""SavedModel export for TF Serving: pinned names, warmup, versions, atomicity, configs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import child_env
from harness.tiny import tiny_spec

from genimg_export.artifacts import manifest
from genimg_export.errors import ExportError
from genimg_export.exporters import export_variant, saved_model, warmup
from genimg_export.exporters.saved_model import SavedModelSource
from genimg_serving import config_files
from genimg_serving.configs import BATCHING_FILE, MODELS_CONFIG, MONITORING_CONFIG, ConfigError


@pytest.fixture(scope="module")
def tiny():
    return tiny_spec()


def _export(spec, model, out, **options):
    with SavedModelSource(spec, model) as source:
        (artifact,) = export_variant(spec, model, out, "saved_model", "fp32", source, **options)
    return artifact


def _versions(out, name="tiny"):
    base = Path(out) / "serving" / name
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def test_signature_names_are_the_specs_and_dims_are_dynamic(tiny, tmp_path):
    import tensorflow as tf

    spec, model = tiny
    artifact = _export(spec, model, tmp_path)
    assert artifact.path == "serving/tiny/1" and artifact.options["version"] == 1
    fn = tf.saved_model.load(str(tmp_path / artifact.path)).signatures["serving_default"]
    assert list(fn.structured_input_signature[1]) == ["x"]
    assert fn.structured_input_signature[1]["x"].shape.as_list() == [None, None, None, 3]
    assert list(fn.structured_outputs) == ["y"]
    y = fn(x=tf.zeros([2, 12, 20, 3]))["y"]
    assert y.shape == (2, 12, 20, 3)


def test_warmup_requests_name_the_model_signature_and_inputs(tiny, tmp_path):
    spec, model = tiny
    artifact = _export(spec, model, tmp_path)
    logs = warmup.read(tmp_path / artifact.path / "assets.extra" / warmup.FILENAME)
    assert len(logs) == len(spec.signatures)
    request = logs[0].predict_log.request
    assert request.model_spec.name == "tiny" and request.model_spec.signature_name == "serving_default"
    assert list(request.inputs) == ["x"]
    dims = [d.size for d in request.inputs["x"].tensor_shape.dim]
    assert dims == [1, *spec.canonical_size, 3]


def test_versions_count_up_and_an_existing_one_is_refused(tiny, tmp_path):
    spec, model = tiny
    _export(spec, model, tmp_path)
    _export(spec, model, tmp_path)
    assert _versions(tmp_path) == ["1", "2"]
    before = manifest.load(tmp_path)
    with pytest.raises(ExportError, match=r"version 2 of 'tiny' already exists.*--version 3"):
        _export(spec, model, tmp_path, version=2)
    assert _versions(tmp_path) == ["1", "2"] and manifest.load(tmp_path) == before
    assert _export(spec, model, tmp_path, version=7).path == "serving/tiny/7"


def test_ctrl_c_mid_export_leaves_nothing(tiny, tmp_path, monkeypatch):
    spec, model = tiny

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(warmup, "write", interrupted)  # after saved_model.pb exists
    with pytest.raises(KeyboardInterrupt):
        _export(spec, model, tmp_path)
    assert _versions(tmp_path) == []  # not even a hidden temporary
    assert not (tmp_path / "manifest.json").exists()


CHILD = textwrap.dedent("""
    import time
    from harness.tiny import tiny_spec
    from genimg_export.exporters import warmup, export_variant
    from genimg_export.exporters.saved_model import SavedModelSource

    def stall(path, *args, **kwargs):  # hold the export half-way: saved_model.pb written
        print("WRITING", flush=True)
        time.sleep(600)

    warmup.write = stall
    spec, model = tiny_spec()
    with SavedModelSource(spec, model) as source:
        export_variant(spec, model, {out!r}, "saved_model", "fp32", source)
""")


def test_sigkill_mid_export_leaves_no_version_directory(tiny, tmp_path):
    """The process dies with saved_model.pb already written: TF Serving must see no version."""
    out = tmp_path / "out"
    code = CHILD.format(out=str(out))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=child_env(), text=True)
    try:
        assert child.stdout.readline().strip() == "WRITING", "child did not reach the write"
        base = out / "serving" / "tiny"
        partial = [p for p in base.iterdir() if (p / "saved_model.pb").exists()]
        assert partial and all(p.name.startswith(".") for p in partial), "the half-written version is hidden"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert not [p for p in base.iterdir() if p.name.isdigit()], "a version directory appeared"
    spec, model = tiny
    assert _export(spec, model, out).path == "serving/tiny/1"  # the next export cleans up
    assert _versions(out) == ["1"]


def test_configs_parse_with_tf_serving_protos_and_keep_every_model(tiny, tmp_path):
    import dataclasses

    spec, model = tiny
    other = dataclasses.replace(spec, name="other")
    _export(spec, model, tmp_path)
    _export(other, model, tmp_path)
    _export(spec, model, tmp_path)  # a new version of the first must not drop the second
    serving = tmp_path / "serving"
    config = config_files.parse(serving / MODELS_CONFIG)
    from tensorflow_serving.config import model_server_config_pb2

    assert isinstance(config, model_server_config_pb2.ModelServerConfig)
    entries = {c.name: c for c in config.model_config_list.config}
    assert sorted(entries) == ["other", "tiny"]
    assert entries["tiny"].base_path == "/models/tiny" and entries["tiny"].model_platform == "tensorflow"
    assert entries["tiny"].model_version_policy.latest.num_versions == 1
    batching = config_files.parse(serving / BATCHING_FILE)
    assert batching.max_batch_size.value == 8 and batching.num_batch_threads.value >= 1
    monitoring = config_files.parse(serving / MONITORING_CONFIG)
    assert monitoring.prometheus_config.enable and monitoring.prometheus_config.path.startswith("/")


def test_a_config_tf_serving_would_reject_does_not_parse(tmp_path):
    bad = tmp_path / BATCHING_FILE
    bad.write_text("max_batch_size: 8\n")  # a wrapper message, not a scalar, in TF Serving's proto
    with pytest.raises(ConfigError, match="BatchingParameters"):
        config_files.parse(bad)


def test_versions_ignores_hidden_and_non_numeric_entries(tmp_path):
    for name in ("1", "3", ".4.tmp-123", "notes"):
        (tmp_path / name).mkdir()
    assert saved_model.versions(tmp_path) == [1, 3]


def test_stale_temporaries_of_dead_processes_are_swept(tmp_path):
    from genimg_export import fs as files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".1.tmp-{dead.pid}").mkdir()
    (tmp_path / f".x.tflite.tmp-{os.getpid()}").write_text("mine, in progress")
    files.sweep_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".x.tflite.tmp-{os.getpid()}"]
