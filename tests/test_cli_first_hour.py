"""A newcomer's first hour (issue 16): output paths refused before the work, no traceback
from cleanup, quiet logs, --version, TF Serving's flag spellings, help and tables that fit
80 columns, late checks answered early, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import child_env
from typer.testing import CliRunner

from genimg_export.cli import app
from genimg_export.errors import InvalidInputError

runner = CliRunner()


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_error_line(result, code: int = 2) -> str:
    """The exit code is ``code`` and stderr is one ``error:`` line (no traceback)."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to: chmod for a normal user; root ignores modes, so
    there a read-only tmpfs is mounted (skipped where the machine does not allow it)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = False
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root without mount rights: no read-only folder to test with (run as a normal user)")
    else:
        mounted = True
    assert not os.access(folder, os.W_OK)
    yield folder
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)
    folder.chmod(0o755)


# Each file option, as the command that takes it (a zoo name: nothing loads before the check).
FILE_OPTIONS = {
    "parity --json": ["parity", "--model", "srgan", "--json"],
    "parity --report": ["parity", "--model", "srgan", "--report"],
    "bench --json": ["bench", "--model", "srgan", "--json"],
    "evaluate --json": ["evaluate", "--model", "srgan", "--json"],
    "generate --output": ["generate", "--model", "dcgan", "--output"],
}


def _bad_path(kind: str, tmp_path: Path, ro: Path | None, name: str) -> tuple[Path, str]:
    if kind == "missing folder":
        return tmp_path / "nope" / name, "does not exist"
    if kind == "directory":
        return tmp_path, "is a directory"
    if kind == "file as folder":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f" / name, "is a file, not a folder"
    return ro / name, "read-only"


@pytest.mark.parametrize("kind", ["missing folder", "directory", "file as folder"])
@pytest.mark.parametrize("option", list(FILE_OPTIONS))
def test_bad_output_path_refused_before_work(option, kind, tmp_path):
    name = "out.png" if option.endswith(("--report", "--output")) else "out.json"
    path, expected = _bad_path(kind, tmp_path, None, name)
    before = sorted(tmp_path.rglob("*"))
    started = time.perf_counter()
    line = one_error_line(cli(*FILE_OPTIONS[option], path))
    assert expected in line and option.split()[1] in line, line
    assert time.perf_counter() - started < 5  # refused before any model load or run
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no temporary left


@pytest.mark.parametrize("option", list(FILE_OPTIONS))
def test_read_only_output_refused_before_work(option, read_only_dir):
    name = "out.png" if option.endswith(("--report", "--output")) else "out.json"
    line = one_error_line(cli(*FILE_OPTIONS[option], read_only_dir / name))
    assert "read-only" in line, line


def test_write_json_into_read_only_folder_is_one_clear_error(read_only_dir):
    """Past the early check (a folder made read-only during the run), the write fails with
    the real reason; the temp-file cleanup must not raise over it (it did: EROFS on unlink)."""
    from genimg_export import fs

    with pytest.raises(InvalidInputError, match="cannot write .*Read-only file system|cannot write .*Permission"):
        fs.write_json(read_only_dir / "p.json", {"a": 1})
    assert list(read_only_dir.iterdir()) == []


def test_check_output_file_accepts_a_good_path(tmp_path):
    from genimg_export import fs

    assert fs.check_output_file(tmp_path / "p.json", "--json") == tmp_path / "p.json"
    assert fs.check_output_file(None, "--json") is None


# -- log noise ----------------------------------------------------------------

NOISY = [  # the lines of issue 16, in the runtimes' own formats
    "E0000 00:00:1796288687.611772   17772 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "I0000 00:00:1796288679.730662   17772 port.cc:153] oneDNN custom operations are on.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "W0000 00:00:1796288679.1 123 op_kernel.cc:1857] OP_REQUIRES failed at example_parsing_ops.cc:98 : ABORTED",
    "2026-12-03 09:00:00.123456789 [W:onnxruntime:, graph.cc:1348 Graph] Duplicate initializer 'y'. Please, fix",
    "2026-12-03 09:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary is",
]
KEPT = ["error: --json out.json: folder nope does not exist", "Traceback (most recent call last):",
        "warning: --n is deprecated; use --count", "E0000 is not a log line when it is prose"]


def test_noise_patterns():
    from genimg_export.cli.noise import NOISE

    assert all(NOISE.match(line) for line in NOISY)
    assert not any(NOISE.match(line) for line in KEPT)


def _export_tiny_int8(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    """An ONNX int8 export of the harness's tiny model, as a user runs it: a new process
    whose stderr is a real file descriptor (C++ logs included), TF's log level unset."""
    import numpy as np

    model, npz = tmp_path / "tiny.keras", tmp_path / "cal.npz"
    if not model.exists():
        subprocess.run([sys.executable, "-c", f"from harness.tiny import build; build().save({str(model)!r})"],
                       env=child_env(), check=True, capture_output=True)
        np.savez(npz, x=np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32))
    env = {k: v for k, v in child_env().items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    command = [sys.executable, "-m", "genimg_export", *flags, "onnx", "--model", str(model),
               "--out", str(tmp_path / "out"), "--quantize", "int8", "--calibration-npz", str(npz)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_quiet_by_default(tmp_path):
    from genimg_export.cli.noise import NOISE

    done = _export_tiny_int8(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tiny.int8.onnx" in done.stdout
    for word in ("Duplicate initializer", "cuInit", "absl", "oneDNN", "OP_REQUIRES"):
        assert word not in done.stderr, done.stderr
    assert not [line for line in done.stderr.splitlines() if NOISE.match(line)], done.stderr


@pytest.mark.slow
def test_verbose_shows_the_runtime_logs_and_quiet_only_the_result(tmp_path):
    from genimg_export.cli.noise import NOISE

    verbose = _export_tiny_int8(tmp_path, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert any(NOISE.match(line) for line in verbose.stderr.splitlines()), verbose.stderr  # the filter hid them
    quiet = _export_tiny_int8(tmp_path, "--quiet")
    assert quiet.returncode == 0 and quiet.stderr.strip() == "", quiet.stderr
    assert "tiny.int8.onnx" in quiet.stdout


def test_verbose_and_quiet_together_refused():
    assert "contradict" in one_error_line(cli("--verbose", "--quiet", "models"))


# -- consistency ---------------------------------------------------------------


def test_version():
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"genimg-export {version('genimg-export')}"


def test_predict_count_and_its_old_name_n(tmp_path):
    out = tmp_path / "nope" / "g.png"  # the output check answers before any server is asked
    result = cli("predict", "-m", "dcgan", "--n", "4", "--output", out)
    assert result.exit_code == 2 and "warning: --n is deprecated; use --count" in result.stderr
    assert "--count" in cli("predict", "--help").stdout
    assert "old name of --count" in one_error_line(cli("predict", "-m", "dcgan", "--n", "4", "--count", "2",
                                                         "--output", out))


def test_serve_takes_tf_servings_flag_spellings():
    from genimg_export.cli.serve_commands import tf_serving_args

    assert tf_serving_args(["--model_name=srgan", "--model_base_path", "/m/srgan", "--rest_api_port=0",
                            "--enable_batching=false", "--enable_batching", "--file_system_poll_wait_seconds=5",
                            "--port=9000", "--other_flag"]) == [
        "--model-name=srgan", "--model-base-path", "/m/srgan", "--rest-port=0", "--enable-batching",
        "--poll-seconds=5", "--port=9000", "--other_flag"]
    # Through the CLI: parsed as serve's own options, so serve's own checks answer.
    assert "go together" in one_error_line(cli("serve", "--model_name=srgan"))
    assert "must be >= 0" in one_error_line(cli("serve", "--model_config_file=x.config", "--rest_api_port=-1"))


def _commands() -> list[str]:
    from typer.main import get_command

    return sorted(get_command(app).commands)


def test_every_command_has_an_example_and_no_bool_placeholder():
    for name in _commands():
        text = cli(name, "--help", env={"COLUMNS": "200"}).stdout
        assert "Example" in text, name
        assert "<bool>" not in text and "BOOLEAN" not in text, name
    assert "<bool>" not in cli("--help").stdout


def test_help_fits_80_columns():
    for args in [[], *([name] for name in _commands())]:
        text = cli(*args, "--help", env={"COLUMNS": "80"}).stdout
        long = [line for line in text.splitlines() if len(line) > 80]
        assert not long, (args, long)


# -- tables at 80 columns ------------------------------------------------------


def _render(print_table, result, wide: bool, monkeypatch, capsys) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    print_table(result, wide)
    return capsys.readouterr().out


def test_parity_table_fits_80_columns(monkeypatch, capsys):
    from genimg_export.cli.parity_commands import _print
    from genimg_export.parity.run import Result, Row

    rows = [Row("keras", None, "image", True, 0.0, 0.0, float("inf"), 1.0, True, None),
            Row("tflite", "int8", "image", True, 0.21, 0.03, 24.3, 0.91, False,
                "PSNR 24.3 dB < 30 dB over the output's range [-1, 1]", frac_outside=0.12),
            Row("onnx", "fp32", "image", True, 2e-6, 1e-7, 110.0, 1.0, True, None)]
    result = Result("srgan", rows, 8, [[64, 64]])
    narrow = _render(_print, result, False, monkeypatch, capsys)
    assert max(map(len, narrow.splitlines())) <= 80, narrow
    assert "FAIL" in narrow and "24.3" in narrow and "mean abs" not in narrow
    assert "mean abs" in _render(_print, result, True, monkeypatch, capsys)


def test_bench_table_fits_80_columns(monkeypatch, capsys):
    from genimg_export.bench.peak import Peak
    from genimg_export.bench.run import Result, Row
    from genimg_export.cli.bench_commands import _print

    rows = [Row("keras", None, 12.3, 13.0, 81.3, None, 0.05, None, 0.04, cpu_ms=20.0, load_s=1.2, peak_rss_mb=812,
                achieved_gops=3.1),
            Row("tflite", "int8", 4.1, 4.4, 243.9, 1_234_567, 0.1, 31.2, 0.09, cpu_ms=4.0, load_s=0.01,
                peak_rss_mb=640, achieved_gops=9.0, error="slower than fp32 on this CPU (no VNNI)")]
    result = Result("srgan", (64, 64), 1, 2, 20, Peak(95.0, 180.0, 2, "numpy matmul", 47.0, 90.0), 10**9, rows)
    narrow = _render(_print, result, False, monkeypatch, capsys)
    assert max(map(len, narrow.splitlines())) <= 80, narrow
    assert "p50 ms" in narrow and "243.9" in narrow and "CPU: of peak" not in narrow
    assert "CPU: of peak" in _render(_print, result, True, monkeypatch, capsys)


# -- late checks and leftovers -------------------------------------------------

EARLY = """
import sys, time
from typer.testing import CliRunner
from genimg_export.cli import app
started = time.perf_counter()
result = CliRunner().invoke(app, sys.argv[1:])
print(result.exit_code, "tensorflow" in sys.modules, round(time.perf_counter() - started, 2))
print(result.stderr.strip())
"""


@pytest.mark.parametrize("args, expected", [
    (["generate", "--model", "cgan", "--class-id", "12"], "--class-id must be a digit class 0-9, got 12"),
    (["generate", "--model", "srgan", "--input", "missing.png"], "missing.png"),
    (["generate", "--model", "dcgan", "--count", "0"], "--count must be at least 1"),
])
def test_bad_generate_request_answers_before_tensorflow(args, expected, tmp_path):
    done = subprocess.run([sys.executable, "-c", EARLY, *args], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=120, check=True)
    status, error = done.stdout.splitlines()[:2]
    code, imported, _seconds = status.split()
    assert (code, imported) == ("2", "False"), done.stdout  # refused before TensorFlow and the model load
    assert expected in error and error.startswith("error: "), error
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_creates_no_output_folder(tmp_path):
    line = one_error_line(cli("saved-model", "--model", "srgn", "--out", tmp_path / "out"))
    assert "did you mean 'srgan'" in line
    assert not (tmp_path / "out").exists()


def test_model_names_ignore_case():
    from genimg_export.zoo import registry

    assert registry.get("SRGAN").name == "srgan"
    assert registry.get("DcGaN").name == "dcgan"


def test_no_lock_file_left_in_an_export(tmp_path):
    """Exports lock the folder itself: nothing for TF Serving or the Docker image to pick up."""
    from genimg_export import fs
    from genimg_serving.config_files import _locked

    with fs.locked(tmp_path):  # (not nested: two holders of one folder's lock wait for each other)
        pass
    with _locked(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []
    ignored = (Path(__file__).parents[1] / ".dockerignore").read_text().splitlines()
    assert "**/.genimg-export.lock" in ignored  # left by exports made before this change


def test_folder_lock_excludes_a_second_holder(tmp_path):
    import fcntl

    from genimg_export import fs

    with fs.locked(tmp_path):
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_rerun_does_not_add_an_identical_savedmodel_version(tmp_path):
    """Same weights and options: skipped and said; --version or new weights still add one."""
    from harness.tiny import build

    model, out = tmp_path / "tiny.keras", tmp_path / "out"
    build().save(model)

    def saved_model(*extra):
        result = cli("saved-model", "--model", model, "--out", out, *extra)
        assert result.exit_code == 0, result.output
        return next(line for line in result.stdout.splitlines() if "saved_model" in line)

    def versions():
        return sorted(int(p.name) for p in (out / "serving" / "tiny").iterdir() if p.name.isdigit())

    assert saved_model().startswith("✓") and versions() == [1]
    line = saved_model()
    assert "skipped: identical to version 1" in line and "--version" in line, line
    assert versions() == [1]
    assert saved_model("--version", "7").startswith("✓") and versions() == [1, 7]
    import keras

    changed = keras.models.load_model(model)
    changed.layers[-1].bias.assign(changed.layers[-1].bias + 0.5)
    changed.save(model)
    assert saved_model().startswith("✓") and versions() == [1, 7, 8]


def test_parity_of_a_user_model_uses_its_calibration_images(tmp_path):
    """The parity picture and rows of a user's model exported with --calibration-dir show the
    user's images, not noise (issue 16 item 8): parity reads the folder the manifest recorded."""
    import numpy as np
    from harness.tiny import build
    from PIL import Image

    from genimg_export.parity.run import recorded_calibration
    from genimg_export.zoo import user

    model, images, out = tmp_path / "tiny.keras", tmp_path / "images", tmp_path / "out"
    build().save(model)
    images.mkdir()
    for i in range(4):  # flat colours: noise would have spread within each image
        Image.fromarray(np.full((16, 16, 3), 40 * i + 20, np.uint8)).save(images / f"{i}.png")
    result = cli("tflite", "--model", model, "--out", out, "--quantize", "int8", "--calibration-dir", images)
    assert result.exit_code == 0, result.output
    recorded = recorded_calibration(user.spec_from_path(model), out)
    assert recorded is not None and len(recorded["x"]) == 4
    x = recorded["x"]
    assert np.allclose(x.std(axis=(1, 2, 3)), 0, atol=1e-6)  # each image flat, as drawn
    assert np.allclose(sorted(x.mean(axis=(1, 2, 3))), [(40 * i + 20) / 127.5 - 1 for i in range(4)], atol=1e-3)
