"""benchmarks/accelerator_check.sh: its --dry-run (the GPU path on the CPU at tiny sizes)
runs end to end here; without a GPU the real run refuses in one line (issue 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genimg_export.artifacts.formats import FORMATS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "accelerator_check.sh"


def _run(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO)


def test_dry_run_exports_checks_and_times_every_variant(tmp_path):
    done = _run(str(tmp_path), "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "accelerator_check.json").read_text())
    assert report["dry_run"] and report["device"]["placement"] == "/CPU:0"
    names = FORMATS["saved_model"].variant_names
    assert [r["variant"] for r in report["variants"]] == [*names, *(n + "+xla" for n in names)]
    for row in report["variants"]:
        assert row["parity"]["passed"], row
        assert (tmp_path / row["path"] / "saved_model.pb").is_file()
        assert set(row["timings"]) == {str(b) for b in report["plan"]["batches"]}
        assert all(t["p50_ms"] > 0 and t["images_per_s"] > 0 for t in row["timings"].values())


def test_without_a_gpu_the_real_run_refuses_in_one_line(tmp_path):
    done = _run(str(tmp_path / "out"))
    assert done.returncode == 2
    assert "no GPU visible" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [[], ["--dry-run"]])
def test_usage_errors(args):
    done = _run(*args, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith("usage:")
