"""A model's output range, said once at export (issue 12 item 3): a TF-Hub-style SavedModel
declares none (its images are in 0..255), so ``export --output-range 0,255`` records it in every
manifest entry and in the files' metadata, and parity judges the images over it without being
told again. Without it they are judged over the reference's own spread, where a correct int8
file of a random-init decoder fails (a few units of 0..255)."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The conformance zoo's VAE decoder as a TF-Hub-style SavedModel (sigmoid images scaled to
    0..255) and its 64-sample calibration .npz."""
    from conformance.architectures import ARCHS
    from conformance.matrix import save

    return save(ARCHS["vae_decoder"], tmp_path_factory.mktemp("hub"), "hub")


def _int8(cli, hub, out, *extra):
    path, npz = hub
    result = cli("tflite", "--model", path, "--out", out, "--quantize", "int8", "--calibration-npz", npz,
                 "--calibration-samples", "64", *extra)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def recorded(cli, hub, tmp_path_factory):
    return _int8(cli, hub, tmp_path_factory.mktemp("recorded") / "out", "--output-range", "0,255")


@pytest.fixture(scope="module")
def unrecorded(cli, hub, tmp_path_factory):
    return _int8(cli, hub, tmp_path_factory.mktemp("unrecorded") / "out")


def _parity(cli, hub, out, tmp_path, *extra):
    result = cli("parity", "--model", hub[0], "--out", out, "--backends", "tflite", "--json", tmp_path / "p.json",
                 *extra)
    (row,) = json.loads((tmp_path / "p.json").read_text())["rows"]
    return result, row


def test_the_range_is_in_the_manifest_entry_and_the_file_metadata(recorded, unrecorded):
    from genimg_edge.metadata import read_metadata
    from genimg_edge.model import EdgeModel

    (entry,) = json.loads((recorded / "manifest.json").read_text())["artifacts"]
    (output,) = entry["signatures"]["serving_default"]["outputs"]
    assert output["name"] == "image" and output["value_range"] == [0.0, 255.0]
    assert entry["value_range"] == [0.0, 255.0]
    meta = read_metadata(recorded / entry["path"])
    assert meta["signatures"]["serving_default"]["outputs"][0]["value_range"] == [0.0, 255.0]
    assert EdgeModel.load(recorded / entry["path"]).outputs()[0].value_range == (0.0, 255.0)  # PNGs map 0..255
    (plain,) = json.loads((unrecorded / "manifest.json").read_text())["artifacts"]
    assert plain["signatures"]["serving_default"]["outputs"][0]["value_range"] is None


def test_parity_judges_the_images_over_the_recorded_range_without_the_flag(cli, hub, recorded, tmp_path):
    result, row = _parity(cli, hub, recorded, tmp_path)
    assert result.exit_code == 0, result.output
    assert row["passed"] and row["threshold"]["data_range"] == 255.0
    assert row["threshold"]["range_from"] == "recorded at export"
    assert "images judged over the range recorded at export: image [0.0, 255.0]" in " ".join(result.output.split())


def test_without_a_recorded_range_the_same_file_is_judged_over_the_spread_and_fails(cli, hub, unrecorded, tmp_path):
    result, row = _parity(cli, hub, unrecorded, tmp_path)
    assert result.exit_code == 1, result.output
    assert not row["passed"] and row["threshold"]["range_from"] == "reference spread"
    assert row["threshold"]["data_range"] < 10 and "reference spread" in row["reason"]


def test_the_command_line_still_wins(cli, hub, recorded, tmp_path):
    _, row = _parity(cli, hub, recorded, tmp_path, "--output-range", "image=0,1")
    assert row["threshold"]["range_from"] == "--output-range" and row["threshold"]["data_range"] == 1.0


def test_exports_that_record_different_ranges_ask_the_user_to_choose(cli, hub, recorded, tmp_path):
    out = shutil.copytree(recorded, tmp_path / "out")
    result = cli("saved-model", "--model", hub[0], "--out", out, "--output-range", "0,1")
    assert result.exit_code == 0, result.output
    result = cli("parity", "--model", hub[0], "--out", out, "--backends", "tflite")
    assert result.exit_code == 2 and "the exports record different ranges for output 'image'" in result.output
    assert "--output-range image=LOW,HIGH" in result.output and "Traceback" not in result.output
    assert cli("parity", "--model", hub[0], "--out", out, "--backends", "tflite", "--output-range",
               "0,255").exit_code == 0


@pytest.mark.parametrize("command", ["saved-model", "tflite", "onnx", "all"])
def test_a_zoo_model_declares_its_own_range(cli, tmp_path, command):
    result = cli(command, "--model", "dcgan", "--out", tmp_path / "o", "--output-range", "0,255")
    assert result.exit_code == 2, result.output
    assert "zoo model 'dcgan' declares its own output range ([-1.0, 1.0])" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


@pytest.mark.parametrize(("value", "message"), [
    ("255,0", "LO must be below HI"),
    ("7,7", "LO must be below HI"),
    ("zero,255", "--output-range must be LOW,HIGH"),
    ("imag=0,255", "has no output 'imag' (did you mean 'image'?)"),
])
def test_a_bad_range_is_one_line_and_writes_nothing(cli, hub, tmp_path, value, message):
    result = cli("saved-model", "--model", hub[0], "--out", tmp_path / "o", "--output-range", value)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_an_output_that_declares_its_range_is_left_alone(cli, tmp_path):
    from harness.tiny import build

    build().save(tmp_path / "tiny.keras")  # its output ends in tanh: [-1, 1] is read from the model
    for value, message in (("y=0,255", "output 'y' declares its range [-1.0, 1.0]"),
                           ("0,255", "has no image output without a declared range")):
        result = cli("saved-model", "--model", tmp_path / "tiny.keras", "--out", tmp_path / "o", "--output-range",
                     value)
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / "o").exists()


def test_a_rerun_that_records_a_new_range_adds_a_savedmodel_version(cli, hub, tmp_path):
    """Same weights, new --output-range: the re-run is not 'identical', so the served
    SavedModel (and its manifest entry) carry the range the user just gave."""
    out = tmp_path / "out"

    def saved_model(*extra):
        result = cli("saved-model", "--model", hub[0], "--out", out, *extra)
        assert result.exit_code == 0, result.output
        return json.loads((out / "manifest.json").read_text())["artifacts"]

    saved_model()
    entries = saved_model("--output-range", "0,255")
    assert [e["options"]["version"] for e in entries] == [1, 2]
    assert entries[-1]["value_range"] == [0.0, 255.0]
    assert len(saved_model("--output-range", "0,255")) == 2  # now identical again: skipped


def test_bench_judges_a_user_model_as_parity_does(cli, hub, recorded, tmp_path):
    """bench's PSNR column feeds the calibration data the export recorded and uses the recorded
    range, as parity does: uniform noise over [-1, 1] into a decoder calibrated on its own
    latents, judged over the spread, made the same correct int8 file read about 20 dB."""
    result = cli("bench", "--model", hub[0], "--out", recorded, "--backends", "tflite", "--runs", "3",
                 "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    _, parity_row = _parity(cli, hub, recorded, tmp_path)
    assert row["psnr_db"] > 40 and abs(row["psnr_db"] - parity_row["psnr_db"]) < 6, (row, parity_row)
