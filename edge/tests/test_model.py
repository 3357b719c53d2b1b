"""EdgeModel on toy .tflite files: int8 I/O, signatures, generators, tiling."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from genimg_edge import images
from genimg_edge.errors import EdgeError
from genimg_edge.model import EdgeModel


def _image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (h, w, c)).astype(np.float32)


def test_dynamic_shapes_follow_the_input(toy_models):
    model = EdgeModel.load(toy_models["conv"], num_threads=1)
    for h, w in [(8, 8), (13, 21), (8, 8)]:
        assert model.transform(_image(h, w)).shape == (2 * h, 2 * w, 3)


def test_int8_io_goes_through_scale_and_zero_point(toy_models):
    """Compared with an independent quantize -> raw LiteRT -> dequantize, and with the
    float model (a wrong scale or zero point would be far off)."""
    model = EdgeModel.load(toy_models["conv_int8"], num_threads=1)
    x = _image(16, 16)[None]
    got = model.run({"x": x})["y"]

    interpreter = Interpreter(model_path=str(toy_models["conv_int8"]), num_threads=1)
    runner = interpreter.get_signature_runner("serving_default")
    (s_in, z_in), (s_out, z_out) = (
        runner.get_input_details()["x"]["quantization"],
        runner.get_output_details()["y"]["quantization"],
    )
    q = runner(x=np.clip(np.round(x / s_in) + z_in, -128, 127).astype(np.int8))["y"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, (q.astype(np.float32) - z_out) * np.float32(s_out))

    reference = EdgeModel.load(toy_models["conv"], num_threads=1).run({"x": x})["y"]
    assert np.abs(got - reference).max() < 0.1
    assert np.abs(got - reference).mean() < 0.02


def test_fixed_size_model_runs_other_sizes_in_windows_and_batches_one_by_one(toy_models):
    model = EdgeModel.load(toy_models["conv_int8"], num_threads=1)
    image = _image(16, 40)
    out = model.transform(image)
    assert out.shape == (32, 80, 3)
    # the first window is exactly the image's first 16 columns: its core must match
    first = model.run({"x": image[None, :, :16]})["y"][0]
    np.testing.assert_array_equal(out[:, :16], first[:, :16])
    batch = np.stack([_image(16, 16, seed=s) for s in range(3)])
    rows = model.run({"x": batch})["y"]
    np.testing.assert_array_equal(rows[1], model.run({"x": batch[1:2]})["y"][0])
    with pytest.raises(EdgeError, match="must have shape Nx16x16x3"):
        model.run({"x": _image(20, 20)[None]})


@pytest.mark.parametrize("overlap", [2, 3, 8])
def test_tiles_with_enough_overlap_equal_the_untiled_output(toy_models, overlap):
    model = EdgeModel.load(toy_models["conv"], num_threads=1)
    image = _image(37, 50)
    whole = model.transform(image)
    tiled = model.transform(image, tile=16, overlap=overlap)
    # receptive field is 1.5 px: beyond it only float summation order may differ
    assert np.abs(tiled - whole).max() <= 1e-6
    pixels = model.transform(image, tile=16, overlap=overlap, pixels=True)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, images.to_uint8(tiled))


def test_tiles_without_overlap_show_seams(toy_models):
    """The bound above can fail: with no context, tile borders differ visibly."""
    model = EdgeModel.load(toy_models["conv"], num_threads=1)
    image = _image(37, 50)
    error = np.abs(model.transform(image, tile=16, overlap=0) - model.transform(image))
    assert error.max() > 0.05
    assert error[:, :30].max() > 0.05  # at the seam column 16 (32 at the output)
    np.testing.assert_array_equal(error[:8, :8], 0)  # away from seams: exact


def test_two_signatures_and_a_label_input(toy_models):
    model = EdgeModel.load(toy_models["gen"], num_threads=1)
    assert sorted(model.signatures) == ["encode", "serving_default"]
    digits = model.generate(seed=3, count=12)
    assert digits.shape == (12, 8, 8, 1) and np.abs(digits).max() <= 1
    np.testing.assert_array_equal(digits, model.generate(seed=3, count=12))
    assert not np.array_equal(digits, model.generate(seed=4, count=12))
    inputs = model.generator_inputs(seed=3, count=12, label=None)
    assert inputs["label"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    sevens = model.generator_inputs(seed=3, count=2, label=7)["label"]
    assert sevens.tolist() == [7, 7]
    z = model.run({"image": digits}, signature="encode")["z_mean"]
    assert z.shape == (12, 4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.generate(label=10), "outside the range"),
        (lambda m: m.generate(count=0), "at least 1"),
        (lambda m: m.run({"z": np.zeros((1, 4), np.float32)}), "takes inputs"),
        (lambda m: m.run({"image": np.zeros((1, 8, 8, 3), np.float32)}, "encode"), "Nx8x8x1"),
        (lambda m: m.transform(np.zeros((8, 8, 1))), "not image-to-image"),
        (lambda m: m.run({}, signature="decode"), "no signature 'decode'"),
    ],
)
def test_bad_requests_are_clear_errors(toy_models, call, message):
    with pytest.raises(EdgeError, match=message):
        call(EdgeModel.load(toy_models["gen"]))


def test_wrong_channel_count_and_missing_range(toy_models):
    with pytest.raises(EdgeError, match=r"\(H, W, 3\) image with 3 channel"):
        EdgeModel.load(toy_models["conv"]).transform(_image(8, 8, 1))
    with pytest.raises(EdgeError, match="--input-range"):
        EdgeModel.load(toy_models["conv_raw"]).transform(_image(8, 8))


def test_explicit_range_maps_images_into_the_model_range(toy_models):
    image = _image(8, 8)
    model = EdgeModel.load(toy_models["conv_raw"], input_range=(0.0, 1.0), output_range=(-1.0, 1.0))
    expected = model.run({"x": ((image + 1) / 2)[None]})["y"][0]
    np.testing.assert_allclose(model.transform(image), expected, atol=1e-6)
