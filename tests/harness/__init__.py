"""The shared test harness of all three test trees (tests/, serving/tests/, edge/tests/).

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in the root pyproject.toml), so
any test imports ``from harness.tiny import tiny_spec``; a subprocess a test starts gets
the same path through ``child_env()``.

- ``tiny``: a tiny fully convolutional model and its ModelSpec, fast to export;
- ``zoo_exports``: zoo models exported once per test process;
- ``artifact_checks``: one exported artifact checked against its spec;
- ``serving``: TF Serving's test models, tiny SavedModels, local servers on loopback.
- ``tfserving_twins``: twins of TF Serving's test models, built with TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent  # the folder that holds this package


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a Python subprocess that imports the harness: this process's,
    with ``tests/`` first on ``PYTHONPATH`` and TensorFlow's C++ logging quiet."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path, **extra}
