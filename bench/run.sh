#!/usr/bin/env bash
# All benchmarks (`make bench`). Each prints its own numbers, measured in one
# run on this machine: speed targets are ratios against a reference measured
# beside it, never thresholds in timed tests.
#   bench/read_h5ad.sh     .h5ad load: primeflow vs Python anndata (178k x 2000)
#   bench/metrics/run.sh   evaluation: primeflow evaluate vs a numpy/scipy/scanpy reference
#   bench/perturbench/run.sh  evaluation: primeflow evaluate vs PerturBench's own Evaluation (its source)
#   bench/vcc/run.sh       evaluate --profile vcc vs cell-eval 0.8.2 (VCC-shaped, simulated)
#   bench/solvers.sh       sample quality vs velocity evaluations (solvers, steps)
#   bench/sparse_train.sh  training memory on CSR vs dense X (issue 9; docs/results/scale.md)
#   bench/stream_train.sh  streamed training: memory, throughput, shuffle (issue 9; docs/results/scale.md)
#   bench/fuzz_h5ad.sh     10 minutes of mutation fuzzing of every .h5ad-reading command
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/read_h5ad.sh bench/metrics/run.sh bench/perturbench/run.sh bench/vcc/run.sh bench/solvers.sh bench/sparse_train.sh bench/stream_train.sh bench/fuzz_h5ad.sh; do
  if [ -x "$b" ]; then
    echo "=== $b"
    "$b"
  fi
done
