"""genimg-export bench: the JSON shape, the serving mode, FLOPs and peak, bad input.

Timings are never asserted (the machine is shared); what is checked is that
every figure is there, finite where it must be, and consistent.
"""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest

ROW_KEYS = {"backend", "variant", "p50_ms", "p90_ms", "images_per_s", "bytes", "fraction_of_peak", "psnr_db"}


@pytest.fixture(scope="module")
def user_export(tmp_path_factory):
    """The tiny two-conv model as a user's .keras file, exported to SavedModel, TFLite fp32 and ONNX fp32."""
    from harness.tiny import build

    from genimg_export.exporters import run_all
    from genimg_export.zoo import user

    root = tmp_path_factory.mktemp("bench")
    path = root / "tiny_filter.keras"
    build().save(path)
    spec = user.spec_from_path(path)
    pairs = [("saved_model", "fp32"), ("tflite", "fp32"), ("onnx", "fp32")]
    outcomes = run_all(spec, spec.extra["model"], root / "out", pairs=pairs)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return path, root / "out"


def test_bench_writes_the_stable_json_shape(user_export, cli, tmp_path):
    path, out = user_export
    result = cli("bench", "--model", path, "--out", out, "--size", "16x24", "--runs", "2",
                 "--threads", "1", "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["model"] == "tiny_filter" and doc["size"] == "16x24" and doc["threads"] == 1
    assert doc["peak"]["fp32_gflops"] > 0 and doc["peak"]["int8_gops"] > 0
    assert [(r["backend"], r["variant"]) for r in doc["rows"]] == [
        ("keras", None), ("saved_model", "fp32"), ("tflite", "fp32"), ("onnx", "fp32")]
    # two 3x3 convs (3->8->3 channels) on 16x24: 2 FLOPs per multiply-add, plus bias adds
    convs = 2 * 16 * 24 * 9 * (3 * 8 + 8 * 3)
    assert convs <= doc["flops_per_call"] <= convs * 1.05
    for row in doc["rows"]:
        assert ROW_KEYS <= set(row) and row["error"] is None, row
        assert 0 < row["p50_ms"] <= row["p90_ms"] and row["images_per_s"] > 0
        assert math.isclose(row["images_per_s"], 1000.0 / row["p50_ms"], rel_tol=1e-3)
        assert row["fraction_of_peak"] > 0 and row["cpu_fraction_of_peak"] > 0 and row["cpu_ms"] > 0
        assert row["peak_rss_mb"] > 0 and row["load_s"] >= 0
        assert row["backend"] == "keras" or row["bytes"] > 0
        # fp32 exports of the same model: the same image (PSNR null = identical, else very high)
        assert row["psnr_db"] is None or row["psnr_db"] > 80, row
    assert "bench: tiny_filter, 16x24" in result.output


def test_bench_batch_counts_images(user_export, cli, tmp_path):
    path, out = user_export
    result = cli("bench", "--model", path, "--out", out, "--backends", "onnx", "--batch", "3",
                 "--size", "8x8", "--runs", "2", "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "b.json").read_text())
    (row,) = doc["rows"]
    assert doc["batch"] == 3 and math.isclose(row["images_per_s"], 3000.0 / row["p50_ms"], rel_tol=1e-3)


def test_serving_mode_measures_the_local_server(user_export, cli, tmp_path):
    path, out = user_export
    result = cli("bench", "--model", path, "--out", out, "--backends", "saved_model", "--size", "8x8",
                 "--runs", "3", "--threads", "1", "--concurrency", "2", "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "b.json").read_text())
    serving = doc["serving"]
    assert [lv["concurrency"] for lv in serving["levels"]] == [1, 2]
    assert [lv["requests"] for lv in serving["levels"]] == [3, 6]
    for level in serving["levels"]:
        assert 0 < level["p50_ms"] <= level["p99_ms"] and level["requests_per_s"] > 0
    assert doc["rows"][0]["backend"] == "saved_model" and serving["in_process_p50_ms"] > 0
    assert serving["overhead_p50"] == pytest.approx(
        serving["levels"][0]["p50_ms"] / serving["in_process_p50_ms"] - 1, abs=1e-3
    )
    grpc = doc["rows"][-1]
    assert grpc["backend"] == "grpc" and grpc["p50_ms"] == serving["levels"][-1]["p50_ms"]
    assert grpc["psnr_db"] is None or grpc["psnr_db"] > 80  # the served SavedModel computes the same image
    batching = serving["batching"]  # the export's batching_parameters.txt, alternated with the unbatched server
    assert batching["compared"] and batching["parameters_file"].endswith("batching_parameters.txt")
    assert len(batching["requests_per_s_off"]) == len(batching["requests_per_s_on"]) == batching["rounds"]
    assert batching["speedup"] == pytest.approx(
        statistics.median(batching["requests_per_s_on"]) / statistics.median(batching["requests_per_s_off"]), abs=1e-3)
    assert "server-side batching" in result.output
    assert "concurrency 2" in result.output


def test_count_flops_of_a_dense_layer():
    import keras
    import tensorflow as tf

    from genimg_export.bench.peak import count_flops

    x = keras.Input((100,))
    model = keras.Model(x, keras.layers.Dense(64)(x))
    # 2 * 100 * 64 for the product, 64 for the bias, per sample
    assert count_flops(model, [tf.TensorSpec((4, 100), tf.float32)]) == 4 * (2 * 100 * 64 + 64)


def test_measure_peak_gives_both_figures():
    from genimg_export.bench.peak import measure_peak

    peak = measure_peak(threads=1, n=256, calls=2)
    assert peak.fp32_gflops > 0 and peak.int8_gops > 0 and "MatMulInteger" in peak.method
    assert peak.fp32_gflops_per_cpu_s > 0 and peak.int8_gops_per_cpu_s > 0
    assert peak.best(peak).fp32_gflops == peak.fp32_gflops


def test_fraction_of_peak_uses_the_int8_peak_for_integer_variants():
    from genimg_export.bench.peak import Peak
    from genimg_export.bench.run import Row, fill_timings

    peak = Peak(fp32_gflops=100.0, int8_gops=400.0, threads=1, method="test")
    times = [0.010, 0.020, 0.030]  # p50 20 ms
    rows = {v: Row("tflite", v) for v in ("fp32", "int8", "dynamic")}
    for row in rows.values():
        fill_timings(row, times, batch=2, flops=2e9, peak=peak)
    assert rows["fp32"].p50_ms == pytest.approx(20.0) and rows["fp32"].images_per_s == pytest.approx(100.0)
    assert rows["fp32"].achieved_gops == pytest.approx(100.0) and rows["fp32"].fraction_of_peak == pytest.approx(1.0)
    assert rows["int8"].fraction_of_peak == pytest.approx(0.25) == rows["dynamic"].fraction_of_peak
    assert rows["fp32"].p90_ms == pytest.approx(np.percentile([10, 20, 30], 90))


@pytest.mark.parametrize("args,message", [
    (["--size", "64"], "--size must be HxW, e.g. 64x64"),
    (["--size", "0x8"], "--size must be positive"),
    (["--runs", "1"], "--runs must be at least 2"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--concurrency", "0"], "--concurrency must be between 1 and 64"),
    (["--grpc-target", "localhost:8500"], "--grpc-target is for the serving mode"),
    (["--backends", "grpc"], "measured by the serving mode"),
    (["--backends", "tflte"], "did you mean 'tflite'"),
])
def test_bad_settings_give_one_clear_line(user_export, cli, args, message, tmp_path):
    path, out = user_export
    result = cli("bench", "--model", path, "--out", out, "--json", tmp_path / "b.json", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b.json").exists()


def test_size_is_refused_for_a_fixed_size_model_and_names_are_checked(cli, tmp_path):
    result = cli("bench", "--model", "dcgan", "--size", "32x32")
    assert result.exit_code == 2 and "'dcgan' takes fixed-size inputs (z: 100); drop --size" in result.output
    result = cli("bench", "--model", "srgn")
    assert result.exit_code == 2 and "did you mean 'srgan'" in result.output
    result = cli("bench", "--model", "srgan", "--out", tmp_path / "nope", "--backends", "onnx")
    assert result.exit_code == 2 and "no export directory" in result.output
