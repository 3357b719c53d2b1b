"""genimg-edge on models with several inputs and outputs: --input NAME=FILE, every output written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from genimg_edge.__main__ import main
from genimg_edge.metadata import embed_metadata, read_model_file
from genimg_edge.model import EdgeModel


@pytest.fixture
def files(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    np.save(tmp_path / "onehot.npy", np.eye(10, dtype=np.float32)[3])
    return tmp_path / "in.png", tmp_path / "onehot.npy"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_two_inputs_by_name_and_one_png_per_image_output(toy_models, files, tmp_path, capsys):
    photo, onehot = files
    out = tmp_path / "out.png"
    code, stdout, err = _run(capsys, toy_models["multi"], "--input", f"image={photo}",
                             "--input", f"class_vector={onehot}", "--output", out)
    assert code == 0, err
    written = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out."))
    assert written == ["out.mask.png", "out.outputs.npz", "out.restored.png"], stdout
    model = EdgeModel.load(toy_models["multi"])
    image = np.asarray(Image.open(photo), np.float32)[None] / 127.5 - 1
    expected = model.run({"image": image, "class_vector": np.eye(10, dtype=np.float32)[3][None]})
    np.testing.assert_allclose(np.load(tmp_path / "out.outputs.npz")["score"], expected["score"])
    mask = np.asarray(Image.open(tmp_path / "out.mask.png"), np.float32)
    np.testing.assert_allclose(mask / 255.0, expected["mask"][0, ..., 0], atol=0.5 / 255 + 1e-6)
    assert Image.open(tmp_path / "out.restored.png").size == (16, 12)


def test_npz_holds_every_output(toy_models, files, tmp_path, capsys):
    photo, onehot = files
    code, _, err = _run(capsys, toy_models["multi"], "--input", f"image={photo}", "--input", f"class_vector={onehot}",
                        "--output", tmp_path / "all.npz")
    assert code == 0, err
    with np.load(tmp_path / "all.npz") as data:
        assert {k: data[k].shape for k in data.files} == {"restored": (1, 12, 16, 3), "mask": (1, 12, 16, 1),
                                                           "score": (1, 1)}


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "nope={photo}"], "has no input 'nope'; it takes class_vector: float32[?x10],"
                                  " image: float32[?x?x?x3] range [-1.0, 1.0]"),
    (["--input", "class_vector={onehot}"], "pass --input image=FILE"),
    (["--input", "class_vector={photo}", "--input", "image={photo}"], "'class_vector' is not an image"),
    ([], "pass --output OUT.png (one image per image output) or OUT.npz"),
])
def test_bad_inputs_name_the_model_s_inputs(toy_models, files, tmp_path, capsys, args, message):
    photo, onehot = files
    argv = [a.replace("{photo}", str(photo)).replace("{onehot}", str(onehot)) for a in args]
    if args:
        argv += ["--output", str(tmp_path / "o.png")]
    code, out, err = _run(capsys, toy_models["multi"], *argv)
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and not list(tmp_path.glob("o.*"))


def test_an_output_without_a_declared_range_says_so_and_writes_nothing(toy_models, files, tmp_path, capsys,
                                                                         multi_meta):
    photo, onehot = files
    data = read_model_file(toy_models["multi"])
    meta = multi_meta
    meta["signatures"]["serving_default"]["outputs"][1]["value_range"] = None
    path = tmp_path / "norange.tflite"
    path.write_bytes(embed_metadata(data, meta))
    code, _, err = _run(capsys, path, "--input", f"image={photo}", "--input", f"class_vector={onehot}",
                        "--output", tmp_path / "o.png")
    assert code == 2 and "tensor 'mask'" in err and "metadata declares none" in err and "no genimg_export" not in err
    assert not list(tmp_path.glob("o.*"))
    assert _run(capsys, path, "--input", f"image={photo}", "--input", f"class_vector={onehot}",
                "--output", tmp_path / "o.png", "--output-range", "0,1")[0] == 0


def test_a_generator_given_an_image_describes_its_inputs(toy_models, files, capsys, tmp_path):
    photo, _ = files
    code, _, err = _run(capsys, toy_models["gen"], "--input", photo, "--output", tmp_path / "g.png")
    assert code == 2 and "takes no image (inputs: label: int32[?] range [0.0, 9.0], z: float32[?x4])" in err
    z = tmp_path / "z.npy"
    np.save(z, np.zeros((2, 4), np.float32))
    code, _, err = _run(capsys, toy_models["gen"], "--input", f"z={z}", "--label", "3", "--output", tmp_path / "g.npz")
    assert code == 0, err
    assert np.load(tmp_path / "g.npz")["image"].shape == (2, 8, 8, 1)
