"""Fixtures of the conformance zoo: architectures saved as users save them, and their exports."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name, form)`` -> (model path, export dir): the small architecture saved as
    .keras ("keras") or TF-Hub-style SavedModel ("hub"), exported to every (format, variant)
    with its calibration .npz and, for the hub forms that document it, the 0..255 of their image
    outputs (conformance.matrix.HUB_DOCUMENTED; made once per session)."""
    from conformance.architectures import ARCHS
    from conformance.matrix import export_spec, save
    from genimg_export.exporters import run_all

    made = {}

    def make(name: str, form: str = "keras"):
        if (name, form) not in made:
            root = tmp_path_factory.mktemp(f"{name}_{form}")
            path, npz = save(ARCHS[name], root, form)
            spec = export_spec(ARCHS[name], path, npz, form)
            outcomes = run_all(spec, spec.extra["model"], root / "out", calibration_samples=64)
            made[name, form] = (path, root / "out", outcomes)
        return made[name, form]

    return make
