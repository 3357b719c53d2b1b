"""Fixtures of the conformance zoo: architectures saved as users save them, and their exports."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name, form)`` -> (model path, export dir): the small architecture saved as
    .keras ("keras") or TF-Hub-style SavedModel ("hub"), exported to every (format, variant)
    with its calibration .npz (made once per session)."""
    from conformance.architectures import ARCHS
    from conformance.matrix import save
    from genimg_export.exporters import run_all
    from genimg_export.zoo import loading, user

    made = {}

    def make(name: str, form: str = "keras"):
        if (name, form) not in made:
            root = tmp_path_factory.mktemp(f"{name}_{form}")
            path, npz = save(ARCHS[name], root, form)
            spec = user.with_calibration(loading.get_spec(str(path)), npz=npz)
            outcomes = run_all(spec, spec.extra["model"], root / "out", calibration_samples=64)
            made[name, form] = (path, root / "out", outcomes)
        return made[name, form]

    return make
