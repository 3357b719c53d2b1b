#!/usr/bin/env bash
# The accelerator check of issue 19 (docs/accelerators.md): on a host with an NVIDIA GPU,
# export srgan in every SavedModel variant (fp32, bf16, fp16; plain and XLA-compiled),
# run parity on the GPU against the Keras model on the CPU, and time each variant
# (p50 and images/s at batch 1, 8, 32). Writes OUT/accelerator_check.json.
#
#   benchmarks/accelerator_check.sh OUT            # on the GPU host (< 8 minutes)
#   benchmarks/accelerator_check.sh OUT --dry-run  # same path on the CPU, tiny sizes (CI)
#
# Installs what it needs from the project's own files when genimg_export is not importable
# (pip install -e of edge/, serving/ and the root: TensorFlow must come from the index or
# from a wheel folder given in PIP_FIND_LINKS; nothing else is downloaded).
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3).
set -euo pipefail

if [[ $# -lt 1 || $1 == -* ]]; then
  echo "usage: $0 OUT [--dry-run]" >&2
  exit 2
fi
OUT=$1; shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}

if ! "$PYTHON" -c "import genimg_export, genimg_serving" 2>/dev/null; then
  echo "installing genimg-export from $REPO" >&2
  "$PYTHON" -m pip install --quiet -e ./edge -e ./serving -e .
fi

# 470 s leaves the 8-minute budget a margin for the interpreter start and the install check.
exec timeout 470 "$PYTHON" benchmarks/accelerator_check.py --out "$OUT" "$@"
