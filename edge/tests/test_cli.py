"""genimg-edge CLI through main(argv): success paths and every bad input (exit code, one line)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from genimg_edge import images
from genimg_edge.__main__ import main
from genimg_edge.model import EdgeModel


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in.png"
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys, *argv) -> str:
    code, out, err = _cli(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_image_to_image_equals_the_api(toy_models, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, stdout, _ = _cli(capsys, toy_models["conv"], "--input", photo, "--output", out, "--threads", 1)
    assert code == 0 and f"wrote {out}" in stdout
    got = np.asarray(Image.open(out))
    expected = EdgeModel.load(toy_models["conv"], num_threads=1).transform(images.load_image(photo))
    np.testing.assert_array_equal(got, images.to_uint8(expected))
    assert got.shape == (40, 48, 3)


def test_tiled_cli_and_the_pixel_cap(toy_models, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    err = _error(capsys, toy_models["conv"], "--input", photo, "--output", out, "--max-pixels", 100)
    assert "24x20 = 480 pixels, over the untiled cap of 100" in err and "--tile" in err
    assert not out.exists()
    code, _, _ = _cli(capsys, toy_models["conv"], "--input", photo, "--output", out, "--max-pixels", 100,
                      "--tile", 8, "--overlap", 2)
    assert code == 0
    untiled = tmp_path / "untiled.png"
    assert _cli(capsys, toy_models["conv"], "--input", photo, "--output", untiled)[0] == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(untiled)))


def test_generator_grid_folder_and_npz(toy_models, tmp_path, capsys):
    gen = toy_models["gen"]
    assert _cli(capsys, gen, "--seed", 1, "--count", 4, "--label", 3, "--output", tmp_path / "grid.png")[0] == 0
    assert Image.open(tmp_path / "grid.png").size == (2 + 2 * 10, 2 + 2 * 10)
    assert _cli(capsys, gen, "--count", 3, "--output", tmp_path / "digits")[0] == 0
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert _cli(capsys, gen, "--count", 2, "--output", tmp_path / "raw.npz")[0] == 0
    assert np.load(tmp_path / "raw.npz")["image"].shape == (2, 8, 8, 1)


def test_second_signature_from_an_image(toy_models, tmp_path, capsys):
    digit = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(digit)
    code, _, _ = _cli(capsys, toy_models["gen"], "--signature", "encode", "--input", digit,
                      "--output", tmp_path / "z.npz")
    assert code == 0
    assert np.load(tmp_path / "z.npz")["z_mean"].shape == (1, 4)


@pytest.mark.parametrize("name, args", [("conv", ["--size", "16x24"]), ("gen", ["--count", "4"]), ("conv_int8", [])])
def test_bench_prints_percentiles_and_throughput(toy_models, capsys, name, args):
    code, out, _ = _cli(capsys, toy_models[name], "--bench", "--runs", 5, "--threads", 1, *args)
    assert code == 0
    assert re.search(r"p50 [\d.]+ ms  p90 [\d.]+ ms  [\d.]+ images/s", out), out


def test_info_lists_signatures_and_metadata(toy_models, capsys):
    code, out, _ = _cli(capsys, toy_models["gen"], "--info")
    assert code == 0
    assert "signature encode:" in out and "label: int32[?] range [0.0, 9.0]" in out and '"model": "toygen"' in out


def test_missing_truncated_and_foreign_model_files(toy_models, photo, tmp_path, capsys):
    assert "no such model file" in _error(capsys, tmp_path / "nope.tflite", "--info")
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(toy_models["conv"].read_bytes()[:300])
    assert "truncated or corrupt" in _error(capsys, truncated, "--input", photo, "--output", tmp_path / "o.png")
    assert "not a TFLite model" in _error(capsys, photo, "--info")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    assert "is empty" in _error(capsys, empty, "--info")
    assert not (tmp_path / "o.png").exists()


def test_file_without_metadata_needs_a_range(toy_models, photo, tmp_path, capsys):
    out = tmp_path / "o.png"
    err = _error(capsys, toy_models["conv_raw"], "--input", photo, "--output", out)
    assert "no genimg_export metadata" in err and "--input-range" in err
    assert not out.exists()
    assert _cli(capsys, toy_models["conv_raw"], "--input", photo, "--output", out, "--input-range=-1,1")[0] == 0
    assert out.exists()


def test_wrong_channel_count(toy_models, photo, tmp_path, capsys):
    err = _error(capsys, toy_models["conv4"], "--input", photo, "--output", tmp_path / "o.png")
    assert "4 channels" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--output", "o.png"], "pass --input IMAGE"),
        (["--input", "missing.png", "--output", "o.png"], "no such image file"),
        (["--input", "{photo}", "--output", "o.txt"], "cannot write"),
        (["--input", "{photo}", "--output", "no/such/dir/o.png"], "folder no/such/dir does not exist"),
        (["--input", "{photo}", "--output", "o.npz", "--tile", "8", "--max-pixels", "100"], "crop the image"),
        (["--input", "{photo}", "--output", "o.png", "--tile", "0"], "tile must be at least 1"),
        (["--input", "{photo}", "--output", "o.png", "--threads", "0"], "threads must be at least 1"),
        (["--signature", "decode", "--info"], None),
        (["--signature", "decode", "--output", "o.png"], "no signature 'decode'"),
        (["--bench", "--size", "big"], "HxW"),
        (["--bench", "--runs", "0"], "at least 1"),
    ],
)
def test_bad_arguments_are_one_line(toy_models, photo, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    argv = [toy_models["conv"], *(a.replace("{photo}", str(photo)) for a in args)]
    if message is None:  # --info ignores --signature: lists them all
        assert _cli(capsys, *argv)[0] == 0
        return
    assert message in _error(capsys, *argv)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--label", "10", "--output", "g.png"], "outside the range"),
        (["--input", "x.png", "--output", "g.png"], "drop --input"),
    ],
)
def test_bad_generator_arguments(toy_models, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert message in _error(capsys, toy_models["gen"], *args)


def test_argparse_rejects_a_bad_range(toy_models, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(toy_models["conv"]), "--input-range", "1,0"])
    assert exit_info.value.code == 2
    assert "LO < HI" in capsys.readouterr().err
