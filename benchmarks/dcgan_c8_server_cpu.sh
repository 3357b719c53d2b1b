#!/bin/bash
# Server CPU per request on dcgan at concurrency 8, batched vs unbatched (benchmarks/README.md,
# "Server CPU per request"). Run from the repository root on a quiet machine:
#   bash benchmarks/dcgan_c8_server_cpu.sh [ART_DIR]
# Writes benchmarks/dcgan_c8_server_cpu_{export,5ms,1thread}_run{1,2,3}.json, _threads_sweep.json
# and _low_concurrency.json.
set -euo pipefail
ART=${1:-/tmp/dcgan_server_cpu_art}
GE=.venv/bin/genimg-export
[ -f "$ART/serving/dcgan/1/saved_model.pb" ] || $GE saved-model --model dcgan --out "$ART"
bench() {  # TAG [--batching-parameters-file FILE]
  local tag=$1; shift
  for i in 1 2 3; do
    $GE bench --model dcgan --out "$ART" --backends saved_model --concurrency 8 --threads 2 --runs 300 \
      "$@" --json "benchmarks/dcgan_c8_server_cpu_${tag}_run$i.json" | { grep -A3 "server-side batching" || true; }
  done
}
bench export  # the export's own batching_parameters.txt (max 8, 1 ms, 2 threads)
bench 5ms --batching-parameters-file benchmarks/dcgan_c8_server_cpu_5ms_batching.txt
bench 1thread --batching-parameters-file benchmarks/dcgan_c8_server_cpu_1thread_batching.txt
.venv/bin/python benchmarks/dcgan_c8_server_cpu_threads.py "$ART" benchmarks/dcgan_c8_server_cpu_threads_sweep.json \
  "$ART/serving/batching_parameters.txt" benchmarks/dcgan_c8_server_cpu_1thread_batching.txt \
  benchmarks/dcgan_c8_server_cpu_5ms_batching.txt | tail -20
.venv/bin/python benchmarks/dcgan_c8_server_cpu_low_concurrency.py "$ART" benchmarks/dcgan_c8_server_cpu_low_concurrency.json \
  "$ART/serving/batching_parameters.txt" benchmarks/dcgan_c8_server_cpu_5ms_batching.txt | tail -3
