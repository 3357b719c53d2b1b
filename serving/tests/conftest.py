"""Fixtures for the serving tests: tiny SavedModels and servers on loopback.

Everything runs in-process on 127.0.0.1 with ports picked by the OS, so tests
never collide with a real server or with each other.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from harness.serving import HALF_PLUS_TWO, TESTDATA, start_server, write_affine  # noqa: E402


@pytest.fixture(scope="session")
def affine_base(tmp_path_factory) -> Path:
    """A base path with version 1 of y = 2x + 1 (dynamic H x W)."""
    base = tmp_path_factory.mktemp("affine")
    write_affine(base / "1", 2.0, 1.0)
    return base


@pytest.fixture(scope="module")
def half_plus_two_server():
    """TF Serving's half_plus_two served as "default", as in TF Serving's own tests."""
    if not HALF_PLUS_TWO.is_dir():
        pytest.skip(f"TF Serving's test models are not at {TESTDATA}")
    from genimg_serving.configs import single_model

    server = start_server(single_model("default", HALF_PLUS_TWO))
    yield server
    server.stop()
