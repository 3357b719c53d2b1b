"""The v2 client and ``parity --backends v2`` against a real Triton server (slow).

Triton comes from nvidia-pytriton, which bundles the tritonserver binary (2.51) with its
Python backend only: the ONNX files are served by a Python callable running onnxruntime
(tests/pytriton_onnx_server.py), not by the onnxruntime backend our config.pbtxt names,
so this proves the protocol and the client, and test_triton.py the repository's configs.
pytriton needs numpy<2, so it gets a venv of its own, built here from the registry.

Its Python backend stub links the system's libpython3.11 while running this
interpreter's standard library; where the two differ (Debian 3.11.2 vs pyenv 3.11.7
here) the stub dies with "'_thread.RLock' object has no attribute '_recursion_count'".
LD_LIBRARY_PATH=<this interpreter's LIBDIR> makes it load the matching libpython.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import numpy as np
import pytest
from harness.serving import free_ports

pytestmark = pytest.mark.slow
SERVER = Path(__file__).resolve().parent / "pytriton_onnx_server.py"


@pytest.fixture(scope="module")
def pytriton_python(tmp_path_factory) -> Path:
    return _venv_with(tmp_path_factory, "pytriton-venv", ["nvidia-pytriton==0.7.0", "onnxruntime"])


def _venv_with(tmp_path_factory, name: str, packages: list[str]) -> Path:
    """The python of a new venv with ``packages`` pip-installed. pip's output goes to a file:
    a pipe would hold subprocess.run past its timeout if a grandchild kept it open, and a hung
    install must fail the test, not stall the run."""
    venv = tmp_path_factory.mktemp(name)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, log = venv / "bin" / "python", venv / "pip.log"
    with open(log, "w") as out:
        try:
            code = subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], stdout=out,
                                  stderr=subprocess.STDOUT, timeout=900).returncode
        except subprocess.TimeoutExpired:
            code = "timed out after 900 s"
    if code:
        pytest.fail(f"pip install {' '.join(packages)} failed ({code}): {log.read_text()[-2000:]}")
    return python


@pytest.fixture(scope="module")
def triton(pytriton_python, tmp_path_factory):
    """(Keras model, export dir, http port, grpc port) of a Triton serving dcgan and dcgan_int8."""
    from harness.zoo_exports import reference_model

    from genimg_export.artifacts.formats import FORMATS
    from genimg_export.cli.triton_commands import write_repository
    from genimg_export.exporters import run_all
    from genimg_export.zoo import registry

    spec = registry.get("dcgan")
    model = reference_model(spec)
    out = tmp_path_factory.mktemp("triton-live")
    outcomes = run_all(spec, model, out, [("onnx", v.name) for v in FORMATS["onnx"].variants],
                       calibration_samples=16)
    assert not [o.error for o in outcomes if o.error]
    write_repository(spec, out)  # what parity reads to find the models to check (dcgan, dcgan_int8)
    models = [f"dcgan={out / 'onnx/dcgan.onnx'}", f"dcgan_int8={out / 'onnx/dcgan.int8.onnx'}"]
    failures = []
    for _ in range(2):  # a second try on fresh ports: a start that stalls is tritonserver's, not the client's
        process, http, grpc, log = _start_triton(pytriton_python, models)
        if process:
            yield model, out, http, grpc
            _stop(process)
            return
        failures.append(log)
    pytest.fail("Triton did not start within 180 s, twice:\n" + "\n---\n".join(failures))


def _start_triton(python: Path, models: list[str]):
    """(process, http port, grpc port, output) once READY; (None, .., output) if not in 180 s."""
    http, grpc, metrics = free_ports(3)
    env = {**os.environ, "LD_LIBRARY_PATH": sysconfig.get_config_var("LIBDIR")}
    process = subprocess.Popen([str(python), str(SERVER), str(http), str(grpc), str(metrics), *models],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)  # one group: tritonserver and its stubs stop with it
    lines, ready = [], threading.Event()
    threading.Thread(target=_drain, args=(process, lines, ready), daemon=True).start()
    ready.wait(180)
    if any(line.startswith("READY") for line in lines):
        return process, http, grpc, ""
    _stop(process)
    return None, http, grpc, "".join(lines[-40:])


def _drain(process, lines: list, ready: threading.Event) -> None:
    """Read the server's output to its end, for its whole life: a pipe nobody reads fills
    (64 KiB) and blocks the server's logging, and with it the server. READY or EOF sets ready."""
    for line in process.stdout:
        lines.append(line)
        if line.startswith("READY"):
            ready.set()
    ready.set()


def _stop(process) -> None:
    """SIGTERM the server's whole process group: tritonserver outlives its Python parent otherwise."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_client_speaks_v2_to_triton(triton, scheme):
    import onnxruntime as ort

    from genimg_serving import Client, InvalidArgumentError, NotFoundError

    _, out, http, grpc = triton
    target = f"http://127.0.0.1:{http}" if scheme == "http" else f"grpc://127.0.0.1:{grpc}"
    z = np.random.default_rng(0).standard_normal((3, 100))
    want = ort.InferenceSession(str(out / "onnx/dcgan.onnx")).run(None, {"z": z.astype(np.float32)})[0]
    with Client(target, protocol="v2") as client:
        sig = client.metadata("dcgan").signature()
        assert (list(sig.inputs), list(sig.outputs)) == (["z"], ["image"])
        assert sig.inputs["z"].dtype == "float32" and sig.inputs["z"].shape == (None, 100)
        assert sig.outputs["image"].shape == (None, 32, 32, 1)
        assert [s.state for s in client.status("dcgan")] == ["AVAILABLE"]
        outputs, version = client.predict_versioned("dcgan", {"z": z})  # float64 cast by the metadata
        np.testing.assert_allclose(outputs["image"], want, atol=1e-6)
        assert version == 1
        np.testing.assert_allclose(client.generate("dcgan", z=z), want, atol=1e-6)
        assert client.generate("dcgan_int8", n=2).shape == (2, 32, 32, 1)
        with pytest.raises(NotFoundError, match="unknown model"):
            client.predict("nope", {"z": z})
        with pytest.raises(InvalidArgumentError, match="no version labels"):
            client.predict("dcgan", {"z": z}, label="stable")


def test_parity_v2_against_triton(triton):
    from genimg_export.parity import run_parity

    model, out, http, grpc = triton
    result = run_parity("dcgan", out, ["keras", "onnx", "v2"], samples=8, keras_model=model,
                        servers={"v2": f"127.0.0.1:{grpc}"})
    rows = {(r.backend, r.variant): r for r in result.rows}
    assert rows[("v2", "fp32")].passed and rows[("v2", "fp32")].max_abs < 1e-5
    assert rows[("v2", "int8")].passed  # dcgan_int8, found in the export's Triton repository
    np.testing.assert_allclose(rows[("v2", "int8")].max_abs, rows[("onnx", "int8")].max_abs, atol=1e-5)
    assert all(r.passed for r in result.rows)


def test_cli_status_over_v2(triton):
    from typer.testing import CliRunner

    from genimg_export.cli import app

    _, _, http, _ = triton
    ok = CliRunner().invoke(app, ["status", "--model", "dcgan", "--target", f"v2+http://127.0.0.1:{http}"])
    assert ok.exit_code == 0 and "dcgan version 1: AVAILABLE" in ok.output
    missing = CliRunner().invoke(app, ["status", "--model", "nope", "--target", f"v2+http://127.0.0.1:{http}"])
    assert missing.exit_code != 0 and "nope" in missing.output and "Traceback" not in missing.output


CLIENT_SCRIPT = """
import sys, numpy as np
from genimg_serving import Client
rest, v2, grpc_target = sys.argv[1:]
try:
    import tensorflow
    raise SystemExit("tensorflow is installed")
except ImportError:
    pass
x = np.full((1, 4, 4, 3), 2.0, np.float32)
with Client(rest) as c:
    y = c.predict("affine", {"x": x})["y"]
    assert np.allclose(y, 2.0 * 0.5 + 1.0), y
with Client(v2, protocol="v2") as c:
    assert c.generate("dcgan", n=2).shape == (2, 32, 32, 1)
try:
    Client(grpc_target)
    raise SystemExit("TF Serving's gRPC worked without its protos")
except ImportError as e:
    assert "genimg-serving[grpc]" in str(e), e
print("OK")
"""


@pytest.fixture(scope="module")
def base_python(tmp_path_factory) -> Path:
    """A venv with ``pip install ./serving`` only: the base client, no TensorFlow."""
    serving = Path(__file__).resolve().parents[1] / "serving"
    return _venv_with(tmp_path_factory, "serving-base-venv", [str(serving)])


def test_base_install_calls_rest_and_v2_without_tensorflow(base_python, triton, tmp_path):
    from harness.serving import start_server, write_affine

    from genimg_serving.configs import single_model

    _, _, http, _ = triton
    (tmp_path / "affine").mkdir()
    write_affine(tmp_path / "affine" / "1", 0.5, 1.0)
    server = start_server(single_model("affine", tmp_path / "affine"))
    try:
        run = subprocess.run([str(base_python), "-c", CLIENT_SCRIPT, server.rest_url, f"http://127.0.0.1:{http}",
                              server.target], capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert run.returncode == 0 and run.stdout.strip() == "OK", run.stdout + run.stderr
