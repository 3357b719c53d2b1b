"""genimg_edge runs on a device without TensorFlow: nothing it imports pulls it in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
import genimg_edge, genimg_edge.metadata, genimg_edge.model, genimg_edge.tiling, genimg_edge.images
from genimg_edge.__main__ import main
codes = [main([sys.argv[1], "--info"]), main([sys.argv[1], "--bench", "--runs", "1", "--size", "8x8"])]
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "genimg_export", "typer"))
print(json.dumps({"codes": codes, "heavy": heavy, "litert": "ai_edge_litert.interpreter" in sys.modules}))
"""


def test_running_a_model_imports_no_tensorflow(toy_models):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(toy_models["conv"])], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0]
    assert report["litert"]  # the probe really ran a model
    assert report["heavy"] == []


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("genimg-edge")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--input-range" in result.stdout and "--bench" in result.stdout
