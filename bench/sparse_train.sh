#!/usr/bin/env bash
# Sparse-in-memory training benchmark (issue 9 part 1); a benchmark, not a
# test: it prints numbers measured in one run on this machine.
#
#   bench/sparse_train.sh                 # the runs below at their default sizes
#   FULL=1 bench/sparse_train.sh          # also the issue's 300,000 x 18,080 at 10%
#
# Each case simulates a CSR .h5ad with `primeflow simulate` (streamed in
# chunks), then trains under `/usr/bin/time -v` and reports peak RSS against
# the bytes of X in memory (CSR: indptr 8 B/row + indices 4 B + data 4 B per
# stored value, what primeflow holds; dense: 4 B per value) and the step
# time from history.json (mean cells/s of the logged rows after the first,
# which holds the warm-up).
#
#   A0 the same model and batch on a 2,000-cell file with A's genes and
#      density: model, optimizer, activations and libtorch without the data
#      (peak RSS is reached in the first steps: 10 steps).
#   A  200,000 x 4,000 at ~5% (the issue's 15.9 GB case): tiny U-Net, 50
#      steps, batch $UNET_BATCH (default 4: the tiny U-Net's activations at
#      m = 4,000 are ~180 MB per cell, 11.3 GiB at its default batch 64),
#      on the CSR file and on a dense copy (made with Python anndata).
#   B  $B_CELLS x 18,080 at ~10% (default 100,000: a third of the issue's
#      300,000, the size this 2-core machine simulates in minutes): load
#      (`primeflow info --load`) and 50 steps of the tiny MLP (the tiny U-Net
#      at m = 18,080 takes ~70 s per 4-cell step on one core here).
#   B0 the tiny MLP on a 2,000-cell file with B's genes and density (the
#      no-data baseline of B).
#   FULL=1 adds B at 300,000 cells, and the tiny U-Net on it.
#
# Environment: CASES (default "a0 a b0 b"), UNET_BATCH, B_CELLS, STEPS (50),
# THREADS (1), KEEP=1 keeps the simulated files in target/bench/sparse.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/primeflow
PY=${PYTHON:-.venv/bin/python}
OUT=target/bench/sparse
STEPS=${STEPS:-50}
THREADS=${THREADS:-1}
UNET_BATCH=${UNET_BATCH:-4}
CASES=${CASES:-a0 a b0 b}
B_CELLS=${B_CELLS:-100000}
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
[ -x "$BIN" ] || cargo build --release

# simulate NAME CELLS GENES COUNTS_PER_GENE
simulate() {
  local f=$OUT/$1.h5ad
  if [ ! -f "$f" ]; then
    echo "{\"counts_per_gene\": $4}" > "$OUT/$1.json"
    /usr/bin/time -f "simulate $1: %e s, peak %M KB" \
      "$BIN" simulate --cells "$2" --genes "$3" --config "$OUT/$1.json" \
      --threads "$THREADS" --out "$f" > /dev/null
  fi
  "$BIN" info "$f" | sed -n 2p
}

# x_bytes FILE: bytes primeflow holds for X (CSR or dense, as stored).
x_bytes() {
  "$BIN" info --json "$1" | python3 -c '
import json, sys
x = json.load(sys.stdin)["x"]
(n, m), nnz = x["shape"], x["nnz"]
print(4 * n * m if nnz is None else 8 * (n + 1) + 8 * nnz, x["encoding"])'
}

# train NAME FILE MODEL BATCH [STEPS]: peak RSS and step time.
train() {
  local run=$OUT/run_$1 steps=${5:-$STEPS}
  rm -rf "$run"
  /usr/bin/time -v "$BIN" train --data "$2" --model "$3" --preset tiny \
    --batch-size "$4" --steps "$steps" --log-every $((steps / 5)) \
    --threads "$THREADS" --device cpu --quiet --out "$run" > "$OUT/$1.log" 2>&1
  python3 - "$1" "$OUT/$1.log" "$run/history.json" "$4" $(x_bytes "$2") <<'PYEOF'
import json, re, sys
name, log, hist, batch, xb, enc = sys.argv[1:4] + [int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]]
text = open(log).read()
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", text).group(1)
rows = json.load(open(hist))["rows"]
rates = [r["cells_per_s"] for r in rows[1:]] or [r["cells_per_s"] for r in rows]
step_s = batch / (sum(rates) / len(rates))
print(f"{name}: peak RSS {rss_kb / 2**20:.2f} GiB, X ({enc}) {xb / 2**30:.2f} GiB "
      f"(peak/X {rss_kb * 1024 / xb:.2f}), step {step_s:.2f} s, wall {wall}")
PYEOF
}

has() { [[ " $CASES " == *" $1 "* ]]; }

if has a0; then
  echo "== A0: 2,000 x 4,000 at ~5%, tiny U-Net, batch $UNET_BATCH, 10 steps (no-data baseline)"
  simulate a0_2k_4000 2000 4000 0.06
  train a0 "$OUT/a0_2k_4000.h5ad" unet "$UNET_BATCH" 10
fi

if has a; then
  echo "== A: 200,000 x 4,000 at ~5%, tiny U-Net, batch $UNET_BATCH, $STEPS steps"
  simulate a_200k_4000 200000 4000 0.06
  A=$OUT/a_200k_4000.h5ad
  if [ ! -f "$OUT/a_200k_4000_dense.h5ad" ]; then
    "$PY" - "$A" "$OUT/a_200k_4000_dense.h5ad" <<'PYEOF'
import sys, warnings
warnings.simplefilter("ignore")
import anndata
ad = anndata.read_h5ad(sys.argv[1])
del ad.layers["counts"]
ad.X = ad.X.toarray()
ad.write_h5ad(sys.argv[2])
PYEOF
  fi
  train a_csr "$A" unet "$UNET_BATCH"
  train a_dense "$OUT/a_200k_4000_dense.h5ad" unet "$UNET_BATCH"
fi

run_b() {
  local name=b_${1}_18080
  echo "== B: $1 x 18,080 at ~10%"
  simulate "$name" "$1" 18080 0.13
  /usr/bin/time -f "load ($BIN info --load): %e s, peak %M KB" \
    "$BIN" info --load "$OUT/$name.h5ad" > /dev/null
  echo "   X in memory: $(x_bytes "$OUT/$name.h5ad") bytes"
  train "${name}_mlp" "$OUT/$name.h5ad" mlp 64
}
if has b0; then
  echo "== B0: 2,000 x 18,080 at ~10%, tiny MLP, $STEPS steps (no-data baseline)"
  simulate b0_2k_18080 2000 18080 0.13
  train b0 "$OUT/b0_2k_18080.h5ad" mlp 64
fi
has b && run_b "$B_CELLS"
if [ "${FULL:-0}" = 1 ]; then
  run_b 300000
  train b_300000_unet "$OUT/b_300000_18080.h5ad" unet "$UNET_BATCH"
fi
[ "${KEEP:-0}" = 1 ] || rm -f "$OUT"/*.h5ad
