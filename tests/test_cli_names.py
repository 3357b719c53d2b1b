"""Renamed options: the new spelling works and is listed by --help; the old one, kept for
users' scripts, still works, is hidden, and prints one deprecation line on stderr.

- ``parity``/``bench``: the export folder is ``--out`` (as in the export commands), was ``--artifacts``;
- ``generate``/``predict``: the file written is ``--output`` (``-o`` is a folder in the exports);
- ``generate``: the class is ``--class-id`` (as in ``predict``), was ``--label``.
"""

from __future__ import annotations

import pytest
from PIL import Image

from genimg_export.zoo import registry


def warned(result, old: str, new: str) -> bool:
    return f"warning: {old} is deprecated; use {new}" in result.stderr


@pytest.mark.parametrize("command, message", [
    (["parity", "--model", "srgan", "--backends", "onnx"], "no onnx artifacts of 'srgan'"),
    (["bench", "--model", "srgan", "--backends", "onnx"], "no export directory"),
])
def test_out_replaces_artifacts(cli, tmp_path, command, message):
    folder = tmp_path if command[0] == "parity" else tmp_path / "nope"
    new = cli(*command, "--out", folder)
    assert new.exit_code == 2 and message in new.output and not warned(new, "--artifacts", "--out")
    old = cli(*command, "--artifacts", folder)
    assert old.exit_code == 2 and message in old.output and warned(old, "--artifacts", "--out")
    both = cli(*command, "--out", folder, "--artifacts", folder)
    assert both.exit_code == 2 and "--artifacts is the old name of --out: give --out only" in both.output


def test_generate_output_and_class_id_and_their_old_names(cli, tmp_path):
    weights = tmp_path / "cgan.keras"
    registry.get("cgan").build().save(weights)
    common = ["generate", "--model", "cgan", "--weights", weights, "--count", "2"]
    new = cli(*common, "--class-id", "7", "--output", tmp_path / "new.png", "--out", tmp_path / "new")
    assert new.exit_code == 0 and "warning" not in new.output, new.output
    old = cli(*common, "--label", "7", "-o", tmp_path / "old.png", "--out", tmp_path / "old")
    assert old.exit_code == 0, old.output
    assert warned(old, "--label", "--class-id") and warned(old, "-o", "--output")
    for run in ("new", "old"):
        assert Image.open(tmp_path / f"{run}.png").size[0] > 28
        assert (tmp_path / run / "labels.csv").read_text().splitlines()[1:] == [
            f"sample_{i:04d}.png,7" for i in range(2)]


def test_predict_output_and_its_old_name(cli, tmp_path):
    call = ["predict", "--target", "127.0.0.1:1", "--model", "m"]
    for flag in ("--output", "-o"):
        result = cli(*call, flag, tmp_path / "o.gif")  # refused before any call to the server
        assert result.exit_code == 2 and f"--output {tmp_path / 'o.gif'}: use an image name" in result.output
        assert warned(result, "-o", "--output") == (flag == "-o")
    missing = cli(*call)
    assert missing.exit_code == 2 and "missing option --output FILE" in missing.output


@pytest.mark.parametrize("command, new, old", [
    ("parity", ["--out"], ["--artifacts"]),
    ("bench", ["--out"], ["--artifacts"]),
    ("generate", ["--output", "--class-id"], ["-o", "--label"]),
    ("predict", ["--output"], ["-o"]),
])
def test_help_lists_the_new_names_only(cli, command, new, old):
    text = cli(command, "--help").output
    words = set(text.replace(",", " ").split())
    assert set(new) <= words, text
    assert not set(old) & words, text
