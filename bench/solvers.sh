#!/usr/bin/env bash
# Sample quality against velocity evaluations (issue 9, part 4): Euler,
# midpoint and Heun at 5-50 steps and dopri5 at three tolerances against
# 100-step Euler, on the main job's simulated data and on devel.h5ad's
# norman19 part (docs/results/solvers.md). One libtorch thread per process.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/primeflow
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$BIN" run scripts/solver_curve.rhai --set out=bench/out/solvers_sim
if [ -f ../shared/data/devel.h5ad ]; then
  "$BIN" run scripts/solver_curve.rhai --set data=../shared/data/devel.h5ad \
    --set 'load={"filter": {"dataset": "norman19"}}' --set task=combination \
    --set 'metrics={}' --set out=bench/out/solvers_norman19
fi
