"""Fixtures for the serving tests: TF Serving's test models, tiny SavedModels, servers.

Everything runs in-process on loopback (127.0.0.1) with ports picked by the
OS, so tests never collide with a real server or with each other.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# CI clones the shared folder beside the repository: <repo>/../shared.
TESTDATA = REPO.parent / "shared" / "tfserving-testdata"
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu"
TWO_VERSIONS = TESTDATA / "saved_model_half_plus_two_2_versions"
HALF_PLUS_THREE = TESTDATA / "saved_model_half_plus_three"

needs_testdata = pytest.mark.skipif(
    not HALF_PLUS_TWO.is_dir(),
    reason=f"TF Serving's test models are not at {TESTDATA} (clone shared/ beside the repo)",
)


def write_affine(path: Path, scale: float, offset: float, channels: int = 3) -> Path:
    """A SavedModel computing y = x * scale + offset on NHWC images, written atomically."""
    import tensorflow as tf

    class Affine(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * scale + offset}

    module = Affine()
    tmp = path.with_name(f".tmp-{path.name}")
    tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    os.rename(tmp, path)  # a server never sees half a version
    return path


def copy_version(src: Path, base: Path, version: int) -> Path:
    """Copy a version directory into ``base/<version>`` atomically."""
    tmp = base / f".tmp-{version}"
    shutil.copytree(src, tmp)
    os.rename(tmp, base / str(version))
    return base / str(version)


@pytest.fixture(scope="session")
def affine_base(tmp_path_factory) -> Path:
    """A base path with version 1 of y = 2x + 1 (dynamic H x W)."""
    base = tmp_path_factory.mktemp("affine")
    write_affine(base / "1", 2.0, 1.0)
    return base


def start_server(configs, **kw):
    from genimg_serving.server import ModelServer

    kw.setdefault("grpc_port", 0)
    kw.setdefault("rest_port", 0)
    kw.setdefault("poll_seconds", 0)
    return ModelServer(configs, **kw).start()


@pytest.fixture(scope="module")
def half_plus_two_server():
    """TF Serving's half_plus_two served as "default", as in TF Serving's own tests."""
    if not HALF_PLUS_TWO.is_dir():
        pytest.skip(f"TF Serving's test models are not at {TESTDATA}")
    from genimg_serving.configs import single_model

    server = start_server(single_model("default", HALF_PLUS_TWO))
    yield server
    server.stop()
