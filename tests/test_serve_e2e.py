"""Export -> serve -> client predict equals Keras: the grpc and rest rows of the parity table.

Each zoo model's export (shared with the parity tests) is served by the local
server from the export's own models.config, and the parity check runs its
seeded inputs through the gRPC and REST runners. srgan runs in the default
suite, the rest of the zoo is marked slow, as in test_parity.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from harness.zoo_exports import exported

from genimg_export.parity import run_parity
from genimg_export.zoo import registry

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DEFAULT_MODEL = "srgan"


def serve(out):
    from genimg_serving.server import ModelServer

    return ModelServer.from_flags(model_config_file=out / "serving" / "models.config",
                                  grpc_port=0, rest_port=0, poll_seconds=0).start()


def served_parity(name: str, out, keras_model):
    server = serve(out)
    try:
        servers = {"grpc": server.target, "rest": f"127.0.0.1:{server.rest_port}"}
        return run_parity(name, out, ["grpc", "rest"], samples=8, servers=servers, keras_model=keras_model)
    finally:
        server.stop()


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[] if n == DEFAULT_MODEL else [pytest.mark.slow]) for n in registry.names()
])
def test_served_model_matches_keras_over_grpc_and_rest(name):
    ex = exported(name)
    outcome = ex.outcomes[("saved_model", "fp32")]
    assert outcome.ok, f"SavedModel export failed: {outcome.error}"
    result = served_parity(name, ex.out, ex.model)
    covered = {(r.backend, r.signature) for r in result.rows}
    assert covered == {(b, s.name) for b in ("grpc", "rest") for s in ex.spec.signatures}
    for row in result.rows:
        assert row.ran and row.shape_ok and row.dtype_ok, f"{row.label} {row.signature}: {row.reason}"
        assert row.passed and row.max_abs <= 1e-4, f"{row.label} {row.signature}/{row.output}: {row.reason}"


def test_served_parity_fails_when_the_server_serves_other_weights(tmp_path):
    """The check above can fail: a newer version with perturbed weights is caught."""
    from genimg_export.exporters import saved_model

    ex = exported(DEFAULT_MODEL)
    shutil.copytree(ex.out / "serving", tmp_path / "serving")
    model = ex.spec.build()
    model.set_weights(ex.model.get_weights())
    kernel = next(w for w in model.trainable_weights if len(w.shape) == 4)
    kernel.assign(kernel.numpy() + np.float32(0.05))
    saved_model.export(ex.spec, model, tmp_path)  # the next version, served as latest
    result = served_parity(DEFAULT_MODEL, tmp_path, ex.model)
    assert result.rows and not any(r.passed for r in result.rows)
