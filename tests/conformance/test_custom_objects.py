"""A .keras file with a custom layer (CycleGAN's reflection padding) and ``--custom-objects``."""

from __future__ import annotations

import json

import pytest

LAYER = '''
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="{package}")
class ReflectionPad2D(keras.layers.Layer):
    def __init__(self, pad=1, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def get_config(self):
        return {{**super().get_config(), "pad": self.pad}}
'''


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    """(model file, layers file, module dir): saved with the layer registered, then unregistered,
    as in a fresh process that has not imported the user's module."""
    import keras
    from keras.src.saving import object_registration

    from genimg_export.zoo.keras_file import import_custom_objects

    root = tmp_path_factory.mktemp("custom")
    package = f"user_{root.name}"
    (root / "made_with.py").write_text(LAYER.format(package=package))
    (root / "my_layers.py").write_text(LAYER.format(package=package))
    (root / "mods").mkdir()
    (root / "mods" / f"{package}_mod.py").write_text(LAYER.format(package=package))
    import_custom_objects(root / "made_with.py")
    layer = keras.saving.get_registered_object(f"{package}>ReflectionPad2D")
    x = keras.Input((None, None, 3), name="image")
    y = keras.layers.Conv2D(3, 3, activation="tanh", name="out")(layer(1)(x))
    keras.Model(x, y).save(root / "padded.keras")
    for key in [k for k in object_registration.GLOBAL_CUSTOM_OBJECTS if k.startswith(package + ">")]:
        del object_registration.GLOBAL_CUSTOM_OBJECTS[key]
    return root / "padded.keras", root / "my_layers.py", root / "mods", package


def test_a_missing_custom_class_is_named_with_the_option_to_pass(padded, cli):
    model, _, _, _ = padded
    result = cli("parity", "--model", model, "--backends", "keras")
    assert result.exit_code == 2
    assert "custom class 'ReflectionPad2D'" in result.output and "--custom-objects" in result.output
    assert "Traceback" not in result.output


def test_custom_objects_file_loads_the_model_in_safe_mode_and_is_recorded(padded, cli, tmp_path):
    from genimg_export.zoo import loading

    model, layers_file, _, _ = padded
    result = cli("parity", "--model", model, "--backends", "keras", "--custom-objects", layers_file,
                 "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.json").read_text())["passed"]
    spec = loading.get_spec(str(model))
    assert str(layers_file.resolve()) in spec.extra["custom_objects"]


def test_custom_objects_as_an_importable_module(padded, monkeypatch):
    from genimg_export.zoo import loading

    model, _, mods, package = padded
    monkeypatch.syspath_prepend(str(mods))
    spec = loading.get_spec(str(model), custom_objects=[f"{package}_mod"])
    assert f"{package}_mod" in spec.extra["custom_objects"]


@pytest.mark.parametrize(("value", "message"), [
    ("no_such_layers.py", "no such file"),
    ("no_such_module_xyz", "cannot import it (ModuleNotFoundError"),
])
def test_bad_custom_objects_are_one_clear_line(padded, cli, value, message):
    model, _, _, _ = padded
    result = cli("parity", "--model", model, "--backends", "keras", "--custom-objects", value)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_a_file_that_fails_to_import_says_so(padded, cli, tmp_path):
    model, _, _, _ = padded
    broken = tmp_path / "broken_layers.py"
    broken.write_text("raise RuntimeError('boom')\n")
    result = cli("parity", "--model", model, "--backends", "keras", "--custom-objects", broken)
    assert result.exit_code == 2 and "running it failed (RuntimeError: boom)" in result.output


def test_export_commands_take_custom_objects_and_the_manifest_records_them(padded, cli, tmp_path):
    model, layers_file, _, _ = padded
    out = tmp_path / "out"
    result = cli("onnx", "--model", model, "--out", out, "--quantize", "fp32", "--custom-objects", layers_file)
    assert result.exit_code == 0, result.output
    entries = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert len(entries) == 1 and str(layers_file.resolve()) in entries[0]["options"]["custom_objects"]
