#!/bin/bash
# Full-size RRDBNet (ESRGAN, 16.7 M params, paper init), int8 vs fp32 on onnxruntime and LiteRT (issue 13 target).
# Usage, from the repository root: benchmarks/rrdbnet_full_int8_run.sh [WORKDIR]   (default /tmp/h5)
# Writes WORKDIR/rrdbnet.keras, 32 calibration and 4 parity photo patches (64x64, [0, 1]), the four files
# under WORKDIR/out, then parity and the timings as JSON in WORKDIR. One heavy step at a time.
set -euo pipefail
W=${1:-/tmp/h5}
G=.venv/bin/genimg-export
mkdir -p "$W"
(cd tests && ../.venv/bin/python - "$W" <<'EOF'
import sys
import numpy as np
import keras
from conformance.architectures import ARCHS

w = sys.argv[1]
arch = ARCHS["rrdbnet"]
model = arch.model(full=True)
model.save(f"{w}/rrdbnet.keras")
spec = type("Inputs", (), {"inputs": [keras.Input((None, None, 3), name="lr")]})
np.savez(f"{w}/calib64.npz", **arch.inputs(spec, 32, (64, 64), seed=1))
np.savez(f"{w}/parity64.npz", **arch.inputs(spec, 4, (64, 64), seed=7))
EOF
)
C="--model $W/rrdbnet.keras --out $W/out --input-size 64x64"
$G tflite $C --quantize int8 --calibration-npz "$W/calib64.npz" --calibration-samples 32
$G tflite $C --quantize fp32
$G onnx $C --batch 1 --quantize fp32
$G onnx $C --batch 1 --quantize int8 --calibration-npz "$W/calib64.npz" --calibration-samples 32
$G parity --model "$W/rrdbnet.keras" --out "$W/out" --samples-npz "$W/parity64.npz" --threads 2 --json "$W/parity.json"
.venv/bin/python benchmarks/rrdbnet_full_int8_bench.py --model "$W/rrdbnet.keras" --out "$W/out" \
    --inputs "$W/parity64.npz" --threads 2 --rounds 5 --calls 3 --json "$W/rrdbnet_full_int8_t2.json"
$G bench --model "$W/rrdbnet.keras" --out "$W/out" --backends onnx,tflite --size 64x64 --threads 2 --runs 5 \
    --json "$W/bench_cli.json"
$G bench --model "$W/rrdbnet.keras" --out "$W/out" --by-node --size 64x64 --threads 2 --runs 3 --json "$W/by_node.json"
