"""What keeping a normalisation's statistics float costs an int8 file: the zoo's style model
(11 instance norms) exported to tflite/int8 and onnx/int8 with the statistics int8 (as before
exporters/norm_stats) and float (now), timed alternately at 64x64, 1 thread, 40 calls, medians.

    PYTHONPATH=tests:benchmarks .venv/bin/python benchmarks/norm_stats_speed.py [style]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _files(name: str) -> dict:
    """{statistics float?: (the .int8.onnx, the .int8.tflite)}."""
    from cyclegan_int8 import _variant

    from genimg_export.exporters import run_all
    from genimg_export.zoo.loading import get_spec, load_model

    root, spec, files = Path(tempfile.mkdtemp()), get_spec(name), {}
    for stats in (False, True):
        with _variant(True, stats):
            out = root / f"statistics_float_{stats}"
            run_all(spec, load_model(spec), out, pairs=[("tflite", "int8"), ("onnx", "int8")])
        files[stats] = (next((out / "onnx").glob("*.int8.onnx")), next((out / "tflite").glob("*.int8.tflite")))
    return files


def _runners(files: dict, x: np.ndarray) -> dict:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    runners = {}
    for stats, (onnx_file, tflite_file) in files.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_file), options)
        feed = {session.get_inputs()[0].name: x}
        interpreter = Interpreter(model_path=str(tflite_file), num_threads=1)
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, list(x.shape))
        interpreter.allocate_tensors()

        def invoke(it=interpreter, index=index):
            it.set_tensor(index, x)
            it.invoke()

        runners["onnx", stats] = lambda s=session, feed=feed: s.run(None, feed)
        runners["tflite", stats] = invoke
    return runners


def main(name: str) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    runners = _runners(_files(name), x)
    times = {k: [] for k in runners}
    for run in list(runners.values()) * 3:  # warm-up
        run()
    for _ in range(40):
        for key, run in runners.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    for backend in ("onnx", "tflite"):
        before, now = (float(np.median(times[backend, s])) * 1e3 for s in (False, True))
        print(f"{name} {backend} int8 64x64 1 thread: statistics int8 {before:.2f} ms, float {now:.2f} ms,"
              f" ratio {now / before:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "style")
