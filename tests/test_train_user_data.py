"""train on the user's own images: layouts and bad data (one clear line each),
the tf.data stream, fine-tuning into export, exact resume after a kill, mirrored
= one device, and the multi-worker manifest. Tiny runs: 2-12 steps, batch 2-4."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genimg_export.zoo import registry

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--model", "srgan", "--batch", "2"]


def _photos(folder: Path, n: int, size=(120, 110), seed: int = 0) -> list[Path]:
    """n smooth random RGB images (gradients plus noise), as PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    paths = []
    for i in range(n):
        base = np.stack([(xx * rng.uniform(0.5, 2) + yy * rng.uniform(0.5, 2)) % 256] * 3, -1)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"img{i:02d}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """11 good photos and one file that only claims to be a PNG."""
    folder = tmp_path_factory.mktemp("photos")
    _photos(folder, 11)
    (folder / "broken.png").write_bytes(b"not a png at all")
    return folder


def _clean(result) -> None:
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1, result.output


# --- data in -------------------------------------------------------------


def _tags(logdir: Path) -> set[str]:
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    tags = set()
    for f in logdir.glob("events.out.tfevents.*"):
        for raw in tf.data.TFRecordDataset(str(f)):
            tags |= {v.tag for v in event_pb2.Event.FromString(raw.numpy()).summary.value}
    return tags


def test_srgan_trains_on_a_folder_skips_the_broken_file_and_records_the_data(cli, photos, tmp_path):
    result = cli(*TRAIN, "--data", photos, "--steps", "2", "--eval-every", "1", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image(s), e.g." in result.output and "broken.png" in result.output
    card = json.loads((tmp_path / "srgan.card.json").read_text())
    from genimg_export.zoo import user_data

    scanned = user_data.scan("srgan", photos)
    assert len(scanned.files) == 11 and card["data_sha256"] == scanned.digest
    assert card["data"].startswith("10 images from")  # every 10th file held out for validation
    assert card["validation"].startswith("1 images from")
    assert card["evaluation"]["metric"].startswith("Y-channel PSNR, validation images")
    assert card["command"].endswith(f"--data {photos} --batch 2 --out DIR")
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt-*.index")) == ["ckpt-2.index"]
    assert {"loss/l1", "val/psnr_db", "val/psnr_gain_db", "samples"} <= _tags(tmp_path / "logs")  # TensorBoard


@pytest.mark.parametrize(
    "model, layout, message",
    [
        ("srgan", "empty", "has no images (expected .png"),
        ("srgan", "small", "is 40x30, smaller than the 96x96 crops srgan trains on"),
        ("srgan", "all_broken", "no readable images in"),
        ("pix2pix", "unpaired", "unpaired pix2pix file(s): input/b.png has no match in target/"),
        ("pix2pix", "sizes", "a pair must be the same size"),
        ("cgan", "flat", "cgan needs one sub-folder per class"),
        ("cgan", "empty_class", "has no readable images"),
        ("srgan", "missing", "no such data folder"),
    ],
)
def test_bad_data_gets_one_clear_line(cli, tmp_path, model, layout, message):
    data = tmp_path / "data"
    data.mkdir()
    if layout == "small":
        _photos(data, 2)
        Image.new("RGB", (40, 30)).save(data / "tiny.png")
    elif layout == "all_broken":
        (data / "a.jpg").write_bytes(b"\xff\xd8 truncated")
    elif layout in ("unpaired", "sizes"):
        _photos(data / "input", 1)[0].rename(data / "input" / "a.png")
        _photos(data / "target", 1, size=(120, 110) if layout == "unpaired" else (128, 128))[0].rename(
            data / "target" / "a.png"
        )
        if layout == "unpaired":
            Image.new("RGB", (80, 80)).save(data / "input" / "b.png")
    elif layout == "flat":
        _photos(data, 2)
    elif layout == "empty_class":
        _photos(data / "cats", 2)
        (data / "dogs").mkdir()
    elif layout == "missing":
        data = tmp_path / "nope"
    result = cli("train", "--model", model, "--data", data, "--steps", "1", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.output
    _clean(result)
    assert not (tmp_path / "out" / f"{model}.keras").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "dcgan", "--val", "VAL"], "dcgan's quality metric does not run on your images"),
        (
            ["--model", "srgan", "--init-from", "pix2pix"],
            "--init-from takes 'srgan' (its shipped weights) or a .keras file",
        ),
        (["--model", "srgan", "--init-from", "PIX2PIX_KERAS"], "is not a srgan model"),
        (["--model", "srgan", "--batch", "0"], "--batch must be positive"),
        (["--model", "srgan", "--resume"], "--resume: no checkpoint in"),
        (["--model", "srgan", "--strategy", "multiworker"], "--strategy multiworker needs TF_CONFIG"),
    ],
)
def test_bad_options_get_one_clear_line(cli, photos, tmp_path, monkeypatch, args, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    args = [
        str(registry.get("pix2pix").weights_path) if a == "PIX2PIX_KERAS" else str(photos) if a == "VAL" else a
        for a in args
    ]
    result = cli("train", *args, "--data", photos, "--steps", "1", "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.output
    _clean(result)


def test_a_second_run_into_the_same_out_must_say_resume(cli, photos, tmp_path):
    assert cli(*TRAIN, "--data", photos, "--steps", "1", "--out", tmp_path).exit_code == 0
    again = cli(*TRAIN, "--data", photos, "--steps", "1", "--out", tmp_path)
    assert again.exit_code == 2 and "holds a checkpoint of an earlier run; add --resume" in again.output
    other = cli(*TRAIN, "--data", photos, "--steps", "3", "--seed", "1", "--resume", "--out", tmp_path)
    assert other.exit_code == 2 and "is of a run with seed=0, not 1" in other.output
    _clean(other)


def test_the_stream_is_a_function_of_seed_and_step(photos, tmp_path):
    """Batches of steps 2-3 are the same from a run started at 0 or at 2; pairs share
    their crop; another seed streams other crops."""
    from genimg_export.zoo import data_stream, user_data

    ud = user_data.scan("srgan", photos)
    lay = user_data.layout("srgan")
    full = [b.numpy() for b in data_stream.batches(ud, lay, 2, 0, 0, 4)]
    resumed = [b.numpy() for b in data_stream.batches(ud, lay, 2, 0, 2, 4)]
    other = [b.numpy() for b in data_stream.batches(ud, lay, 2, 1, 0, 4)]
    assert full[0].shape == (2, 96, 96, 3) and -1 <= full[0].min() and full[0].max() <= 1
    assert all(np.array_equal(a, b) for a, b in zip(full[2:], resumed))
    assert not np.array_equal(full[0], other[0])
    for sub in ("input", "target"):
        _photos(tmp_path / sub, 3)
    pairs = user_data.scan("pix2pix", tmp_path)
    degraded, clean = next(iter(data_stream.batches(pairs, user_data.layout("pix2pix"), 2, 0, 0, 1)))
    assert degraded.shape == (2, 64, 64, 3) and np.array_equal(degraded.numpy(), clean.numpy())


def test_class_folders_and_tfrecord_shards_stream_labelled_digits(tmp_path):
    """cgan's class folders and TFRecord shards of encoded images + labels both
    stream (32x32x1 images, int labels); a shard without images is refused."""
    import tensorflow as tf

    from genimg_export.errors import InvalidInputError
    from genimg_export.zoo import data_stream, user_data

    folders = tmp_path / "classes"
    for label in ("a", "b", "c"):
        _photos(folders / label, 2, size=(40, 40), seed=ord(label))
    scanned = user_data.scan("cgan", folders)
    assert scanned.describe() == f"6 images in 3 classes (a, b, c) from {folders}"
    lay = user_data.layout("cgan")
    images, labels = next(iter(data_stream.batches(scanned, lay, 6, 0, 0, 1)))
    assert images.shape == (6, 32, 32, 1) and sorted(labels.numpy()) == [0, 0, 1, 1, 2, 2]
    shard = tmp_path / "shards" / "digits.tfrecord"
    shard.parent.mkdir()
    with tf.io.TFRecordWriter(str(shard)) as w:
        for i, png in enumerate(scanned.files):
            feats = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[Path(png).read_bytes()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[scanned.labels[i]])),
            }
            w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    records = user_data.scan("cgan", shard.parent)
    first = [(x.numpy(), y.numpy()) for x, y in data_stream.batches(records, lay, 4, 0, 0, 3)]
    resumed = [(x.numpy(), y.numpy()) for x, y in data_stream.batches(records, lay, 4, 0, 2, 3)]
    assert first[0][0].shape == (4, 32, 32, 1) and set(first[0][1]) <= {0, 1, 2}
    assert np.array_equal(first[2][0], resumed[0][0]) and np.array_equal(first[2][1], resumed[0][1])
    no_image = tmp_path / "bad.tfrecord"
    with tf.io.TFRecordWriter(str(no_image)) as w:
        w.write(tf.train.Example().SerializeToString())
    with pytest.raises(InvalidInputError, match="records have no 'image' feature"):
        user_data.scan("cgan", no_image)


# --- fine-tuning into export -----------------------------------------------


def test_fine_tuned_srgan_keeps_its_spec_and_exports(cli, photos, tmp_path):
    """--init-from srgan starts from the shipped weights (300 steps at lr 2e-5 by
    default; here 1 step) and the result goes into the exporters like a zoo model."""
    result = cli(*TRAIN, "--data", photos, "--init-from", "srgan", "--steps", "1", "--out", tmp_path / "ft")
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "ft" / "srgan.card.json").read_text())
    assert card["init_from"] == "srgan" and card["config"]["optimizer"] == "Adam 2e-05"
    from genimg_export.zoo.keras_file import load_keras

    shipped = load_keras(registry.get("srgan").weights_path).get_weights()
    tuned = load_keras(tmp_path / "ft" / "srgan.keras").get_weights()
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(shipped, tuned))
    assert 0 < moved < 1e-3  # one small step away from the shipped weights, not a fresh model
    export = cli(
        "onnx",
        "--model",
        "srgan",
        "--weights",
        tmp_path / "ft" / "srgan.keras",
        "--quantize",
        "fp32",
        "--out",
        tmp_path / "exp",
    )
    assert export.exit_code == 0, export.output
    parity = cli("parity", "--model", "srgan", "--weights", tmp_path / "ft" / "srgan.keras", "--out", tmp_path / "exp")
    assert parity.exit_code == 0, parity.output


def test_mixed_precision_trains_in_bfloat16_and_saves_float32(cli, photos, tmp_path):
    import keras

    result = cli(*TRAIN, "--data", photos, "--steps", "1", "--mixed-precision", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert keras.mixed_precision.global_policy().name == "float32"  # the process is left as it was
    card = json.loads((tmp_path / "srgan.card.json").read_text())
    assert card["strategy"] == {"name": "one", "replicas": 1, "mixed_precision": True}
    from genimg_export.zoo.keras_file import load_keras

    model = load_keras(tmp_path / "srgan.keras")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert model(np.zeros((1, 8, 8, 3), np.float32)).dtype.name == "float32"


def test_help_documents_fine_tuning_defaults(cli):
    result = cli("train", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "300 steps at a tenth of the model's learning rate" in text
    import typer

    from genimg_export.cli import app

    flags = {o for p in typer.main.get_command(app).commands["train"].params for o in p.opts}
    assert {
        "--data",
        "--val",
        "--init-from",
        "--resume",
        "--strategy",
        "--mixed-precision",
        "--checkpoint-every",
    } <= flags


# --- exact resume after a kill ----------------------------------------------


def _spawn(model: str, out: Path, data: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "genimg_export", "train", "--model", model, "--batch", "2", "--data", str(data)]
    cmd += ["--steps", "24", "--checkpoint-every", "3", "--out", str(out), *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _weights(path: Path) -> list[np.ndarray]:
    from genimg_export.zoo.keras_file import load_keras

    return load_keras(path).get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("model, sig", [("srgan", signal.SIGKILL), ("pix2pix", signal.SIGTERM)])
def test_a_killed_run_resumes_to_the_same_weights(photos, tmp_path, model, sig):
    """Kill after the first checkpoint; --resume; the final weights equal, bit for bit,
    those of an uninterrupted run (each run in a fresh process). pix2pix also draws
    its degradations from the trainer's numpy Generator and trains a discriminator:
    both are in the checkpoint."""
    reference = _spawn(model, tmp_path / "ref", photos)
    victim = _spawn(model, tmp_path / "killed", photos)
    deadline = time.time() + 240
    while not (tmp_path / "killed" / "checkpoints" / "ckpt-3.index").exists():
        assert victim.poll() is None and time.time() < deadline, victim.stdout.read()
        time.sleep(0.05)
    victim.send_signal(sig)
    output = victim.communicate(timeout=120)[0]
    if sig == signal.SIGTERM:
        assert victim.returncode == 130 and "checkpoint saved" in output and "--resume" in output, output
    else:
        assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / f"{model}.keras").exists()
    resumed = _spawn(model, tmp_path / "killed", photos, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    assert reference.wait(timeout=300) == 0, reference.stdout.read()
    card = json.loads((tmp_path / "killed" / f"{model}.card.json").read_text())
    assert card["resumed_from_step"] >= 3
    a, b = _weights(tmp_path / "ref" / f"{model}.keras"), _weights(tmp_path / "killed" / f"{model}.keras")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_checkpoint_whose_state_file_was_never_written_still_resumes(tmp_path):
    """Killed after TF wrote ckpt-N.index but before the manager wrote its ``checkpoint``
    file (seen on CI at the first save): the complete checkpoint on disk is the one resumed,
    and a new run into the folder is still refused."""
    from types import SimpleNamespace

    import keras

    from genimg_export.errors import InvalidInputError
    from genimg_export.train.state import TrainState

    def state():
        net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        trainer = SimpleNamespace(nets={"g": net}, optimizers=[], rng=np.random.default_rng(0))
        return TrainState(trainer, tmp_path, {"model": "tiny"}), net

    saved, net = state()
    saved.begin(resume=False)
    net.set_weights([np.full((2, 1), 0.5, np.float32), np.ones(1, np.float32)])
    saved.save(step=3, seconds=1.5)
    (tmp_path / "checkpoint").unlink()
    with pytest.raises(InvalidInputError, match="holds a checkpoint"):
        state()[0].begin(resume=False)
    resumed, net = state()
    assert resumed.begin(resume=True) == (3, 1.5)
    assert np.array_equal(net.get_weights()[0], np.full((2, 1), 0.5, np.float32))


# --- more than one device ----------------------------------------------------

MIRRORED = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pathlib import Path
    from genimg_export import train as T
    from genimg_export.zoo import registry
    from genimg_export.zoo.keras_file import load_keras
    out, data = Path(sys.argv[1]), Path(sys.argv[2])
    spec = registry.get("srgan")
    replicas = {}
    for name, strategy, batch in (("mirrored", "mirrored", 4), ("one", "one", 4), ("half", "one", 2)):
        run = T.RunOptions(data=data, batch=batch, strategy=strategy)
        replicas[name] = T.train(spec, 2, out / name, run=run)["strategy"]["replicas"]
    T.seed_everything(0)
    w = {k: load_keras(out / k / "srgan.keras").get_weights() for k in ("mirrored", "one", "half")}
    w["init"] = spec.build().get_weights()
    diff = lambda a, b: max(float(np.max(np.abs(x - y))) for x, y in zip(w[a], w[b]))
    print({"replicas": replicas, "mirrored_vs_one": diff("mirrored", "one"),
           "moved": diff("mirrored", "init"), "half_vs_one": diff("half", "one")})
""")


@pytest.mark.slow  # three tiny trainings in a subprocess: 40-140 s on 2 shared cores
def test_mirrored_on_two_logical_cpus_equals_one_device(photos, tmp_path):
    """Global batch 4 as 2 x 2 replicas vs 4 on one device: the same weights within
    float tolerance. (One device on batch 2 differs: the comparison sees the batch.)"""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(photos)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = eval(out.stdout.strip().splitlines()[-1])  # a dict literal printed by our script
    assert result["replicas"] == {"mirrored": 2, "one": 1, "half": 1}
    assert result["moved"] > 1e-4
    assert result["mirrored_vs_one"] < 1e-6
    assert result["half_vs_one"] > 100 * max(result["mirrored_vs_one"], 1e-8)


def test_kubernetes_job_agrees_with_the_cli():
    """train/k8s/job.yaml: an Indexed Job whose workers match TF_CONFIG, and whose
    command the train CLI accepts."""
    import typer
    import yaml

    from genimg_export.cli import app

    docs = list(yaml.safe_load_all((ROOT / "train" / "k8s" / "job.yaml").read_text()))
    service, job = (next(d for d in docs if d["kind"] == kind) for kind in ("Service", "Job"))
    spec = job["spec"]
    workers = spec["completions"]
    assert spec["parallelism"] == workers and spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    assert (
        spec["template"]["spec"]["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WORKERS"] == str(workers)
    script = container["args"][-1]
    argv = script[script.index("genimg-export train") :].split()[2:]
    assert argv[-1] == "$resume" and argv[argv.index("--strategy") + 1] == "multiworker"
    argv[-1] = "--resume"  # what a restarted pod runs (a first start drops the word)
    train = typer.main.get_command(app).commands["train"]
    train.make_context("train", argv[:])  # raises on an unknown or malformed flag
    with pytest.raises(Exception, match="no-such-flag"):  # the same parser refuses a wrong flag
        train.make_context("train", [*argv, "--no-such-flag"])
    hosts = subprocess.run(
        ["bash", "-c", script[: script.index("genimg-export train")] + 'echo "$TF_CONFIG"'],
        env={"JOB_COMPLETION_INDEX": "1", "WORKERS": str(workers), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tf_config = json.loads(hosts)
    assert tf_config["task"] == {"type": "worker", "index": 1}
    assert len(tf_config["cluster"]["worker"]) == workers
    name, svc = job["metadata"]["name"], service["metadata"]["name"]
    assert tf_config["cluster"]["worker"][0] == f"{name}-0.{svc}:2222"
