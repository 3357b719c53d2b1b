"""Shared test harness: quiet TensorFlow, a CLI runner, and the zoo's names."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def cli():
    """Invoke ``genimg-export`` in-process: ``cli("models")`` -> click Result."""
    from genimg_export.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke
