"""CLI: models, train, evaluate, generate — success paths and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from genimg_export.zoo import registry


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """Untrained .keras files for the models the CLI tests use."""
    d = tmp_path_factory.mktemp("weights")
    paths = {}
    for name in ("cgan", "srgan", "vae"):
        paths[name] = d / f"{name}.keras"
        registry.get(name).build().save(paths[name])
    return paths


def test_help_is_instant_and_imports_no_tensorflow():
    code = ("import sys, time; t=time.perf_counter(); from genimg_export.cli import app;"
            " print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genimg_export", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - start < 5  # generous: a TF import alone takes longer here


def test_models_lists_the_zoo_with_io(cli):
    result = cli("models")
    assert result.exit_code == 0, result.output
    for name in registry.names():
        assert name in result.output
    assert "lr[float32 ?x?x3] -> hr[float32 ?x?x3]" in result.output
    assert "encode: image[float32 32x32x1] -> z_mean" in result.output


def test_unknown_model_gets_a_suggestion_and_no_traceback(cli):
    result = cli("evaluate", "--model", "dcgn")
    assert result.exit_code == 2
    assert "unknown model 'dcgn' (did you mean 'dcgan'?)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_train_rejects_non_positive_steps(cli, tmp_path, steps):
    result = cli("train", "--model", "dcgan", "--steps", steps, "--out", tmp_path / "w")
    assert result.exit_code == 2
    assert "--steps must be a positive number" in result.output
    assert not (tmp_path / "w").exists()


def test_train_refuses_an_unwritable_out(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("train", "--model", "dcgan", "--steps", "1", "--out", blocker / "sub")
    assert result.exit_code == 2
    assert "cannot create output directory" in result.output


def test_train_writes_model_and_card_deterministically(cli, tmp_path):
    for run in ("a", "b"):
        result = cli("train", "--model", "vae", "--steps", "3", "--seed", "5", "--out", tmp_path / run)
        assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "a" / "vae.card.json").read_text())
    assert card["command"] == "genimg-export train --model vae --steps 3 --seed 5 --out DIR"
    assert "recon_psnr_db" in card["evaluation"] and "mean_confidence" in card["evaluation"]
    from genimg_export.zoo.loading import load_keras

    a, b = (load_keras(tmp_path / r / "vae.keras") for r in "ab")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # + resume, TensorBoard
    assert sorted(os.listdir(tmp_path / "a")) == ["checkpoints", "logs", "vae.card.json", "vae.keras"]


def test_train_progress_follows_quiet(cli, tmp_path):
    loud = cli("train", "--model", "vae", "--steps", "2", "--out", tmp_path / "loud")
    quiet = cli("--quiet", "train", "--model", "vae", "--steps", "2", "--out", tmp_path / "quiet")
    assert loud.exit_code == 0 and quiet.exit_code == 0, loud.output + quiet.output
    assert "train vae 2/2" in loud.output  # the plain progress line of a non-terminal run
    assert "train vae" not in quiet.output
    assert "evaluation:" in quiet.output  # the result is still printed


def test_generate_grid_and_folder_with_labels(cli, untrained, tmp_path):
    out = tmp_path / "grid.png"
    result = cli("generate", "--model", "cgan", "--weights", untrained["cgan"], "--class-id", "7",
                 "--count", "4", "--output", out, "--out", tmp_path / "samples")
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 64
    labels = (tmp_path / "samples" / "labels.csv").read_text().splitlines()
    assert labels == ["file,label"] + [f"sample_{i:04d}.png,7" for i in range(4)]


def test_generate_rejects_a_bad_label(cli, untrained, tmp_path):
    result = cli("generate", "--model", "cgan", "--weights", untrained["cgan"], "--class-id", "12",
                 "--output", tmp_path / "g.png")
    assert result.exit_code == 2 and "--class-id must be a digit class 0-9" in result.output
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("mode", ["L", "RGBA", "RGB"])
def test_generate_upscales_gray_rgba_and_rgb_images(cli, untrained, tmp_path, mode):
    src = tmp_path / f"in_{mode}.png"
    Image.new(mode, (13, 9)).save(src)
    out = tmp_path / "sr.png"
    result = cli("generate", "--model", "srgan", "--weights", untrained["srgan"], "--input", src, "--output", out)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (52, 36) and Image.open(out).mode == "RGB"


def test_generate_rejects_a_file_that_is_not_an_image(cli, untrained, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    result = cli("generate", "--model", "srgan", "--weights", untrained["srgan"], "--input", bad,
                 "--output", tmp_path / "o.png")
    assert result.exit_code == 2 and "is not a readable image" in result.output
    assert not (tmp_path / "o.png").exists()


def test_missing_and_corrupt_weights_are_reported(cli, tmp_path):
    result = cli("evaluate", "--model", "srgan", "--weights", tmp_path / "nope.keras")
    assert result.exit_code == 2 and "no such model file" in result.output
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("evaluate", "--model", "srgan", "--weights", corrupt)
    assert result.exit_code == 2 and "not a valid .keras file" in result.output
    assert "Traceback" not in result.output


def test_lambda_model_needs_the_unsafe_flag(cli, tmp_path):
    import keras

    inp = keras.Input((4, 4, 3), name="x")
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0)(inp))
    path = tmp_path / "lambda.keras"
    model.save(path)
    result = cli("generate", "--model", path, "--input", tmp_path / "x.png", "--output", tmp_path / "o.png")
    assert result.exit_code == 2
    assert "--allow-unsafe-deserialization" in result.output
    assert zipfile.is_zipfile(path)  # the user's file is untouched
