"""Fixtures for the serving tests: tiny SavedModels and servers on loopback.

Everything runs in-process on 127.0.0.1 with ports picked by the OS, so tests
never collide with a real server or with each other.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from harness.serving import start_server, write_affine  # noqa: E402
from harness.tfserving_twins import SOURCES, build_testdata, shared_testdata  # noqa: E402


@pytest.fixture(scope="session")
def affine_base(tmp_path_factory) -> Path:
    """A base path with version 1 of y = 2x + 1 (dynamic H x W)."""
    base = tmp_path_factory.mktemp("affine")
    write_affine(base / "1", 2.0, 1.0)
    return base


@pytest.fixture(scope="session")
def twin_testdata(tmp_path_factory) -> Path:
    """TF Serving's test models rebuilt with TensorFlow (a few seconds): no checkout needed."""
    return build_testdata(tmp_path_factory.mktemp("tfserving-testdata"))


@pytest.fixture(scope="session", params=SOURCES)
def testdata(request) -> Path:
    """TF Serving's test models: the twins always, TF Serving's own copies too when present
    (GENIMG_TFSERVING_TESTDATA, default <repo>/../shared/tfserving-testdata)."""
    if request.param == "twin":
        return request.getfixturevalue("twin_testdata")
    return shared_testdata()


@pytest.fixture(scope="module")
def half_plus_two_server(testdata):
    """TF Serving's half_plus_two served as "default", as in TF Serving's own tests."""
    from genimg_serving.configs import single_model

    server = start_server(single_model("default", testdata / "saved_model_half_plus_two_cpu"))
    yield server
    server.stop()
