#!/usr/bin/env bash
# Streaming training benchmark (issue 9 part 2); a benchmark, not a test: it
# prints numbers measured in one run on this machine.
#
#   bench/stream_train.sh                      # all cases at the issue's size
#   BIG_CELLS=500000 bench/stream_train.sh     # a smaller "larger than RAM" file
#   CASES="shuffle" bench/stream_train.sh      # only the shuffle experiment
#
# Cases (CASES, default "sim train shuffle"):
#   sim      simulate the big file, $BIG_CELLS x $GENES at ~10% density
#            (default 2,000,000 x 2,000), and a file that fits, $FIT_CELLS
#            (default 200,000) with the same genes and density, each with
#            `primeflow simulate` under /usr/bin/time (peak RSS of writing).
#   train    the tiny U-Net, batch $BATCH (default 8), $STEPS steps (default
#            40), under /usr/bin/time: in memory on the file that fits,
#            streamed from the same file, streamed from the big file. Reports
#            peak RSS and training cells/s (mean of the logged rows after
#            the first, which holds the warm-up), and the ratios streamed /
#            in memory. The streamed runs' wall time includes the two
#            statistics passes over the file (reported separately: the time
#            before the first step).
#   shuffle  the effect of the buffer's local shuffle on the loss: the tiny
#            MLP on a 20,000 x 200 file with a combination split, 600 steps
#            of 64, validation loss every 150 steps, on the simulator's
#            (random) cell order and on a copy sorted by condition (the worst
#            case for a local shuffle), in memory (full shuffle, two seeds
#            for the seed-to-seed spread), streamed with a buffer of the
#            whole file (full shuffle), streamed with 4 chunks of 256 cells
#            (1,024 cells, 6% of the training cells) and with 1 chunk of
#            1,024 cells (no mixing between chunks).
#
# Environment: BIG_CELLS, FIT_CELLS, GENES, BATCH, STEPS, THREADS (1),
# CASES, KEEP=1 keeps the files in target/bench/stream.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/primeflow
PY=${PYTHON:-.venv/bin/python}
OUT=target/bench/stream
BIG_CELLS=${BIG_CELLS:-2000000}
FIT_CELLS=${FIT_CELLS:-200000}
GENES=${GENES:-2000}
BATCH=${BATCH:-8}
STEPS=${STEPS:-40}
THREADS=${THREADS:-1}
CASES=${CASES:-sim train shuffle}
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
[ -x "$BIN" ] || cargo build --release
has() { [[ " $CASES " == *" $1 "* ]]; }
# counts_per_gene 0.135 gives ~10% non-zero at 2,000 genes.
echo '{"counts_per_gene": 0.135}' > "$OUT/density.json"

# simulate NAME CELLS GENES
simulate() {
  local f=$OUT/$1.h5ad
  if [ ! -f "$f" ]; then
    /usr/bin/time -f "simulate $1 ($2 x $3): %e s, peak RSS %M KB" \
      "$BIN" simulate --cells "$2" --genes "$3" --config "$OUT/density.json" \
      --threads 2 --out "$f" > /dev/null
  fi
  echo "  $("$BIN" info "$f" | sed -n 2p), $(du -h "$f" | cut -f1) on disk"
}

# train NAME FILE [extra flags...]: peak RSS and cells/s.
train() {
  local name=$1 file=$2 run=$OUT/run_$1
  shift 2
  rm -rf "$run"
  /usr/bin/time -v "$BIN" train --data "$file" --model unet --preset tiny \
    --batch-size "$BATCH" --steps "$STEPS" --log-every $((STEPS / 5)) \
    --threads "$THREADS" --device cpu --quiet --out "$run" "$@" > "$OUT/$name.log" 2>&1
  python3 - "$name" "$OUT/$name.log" "$run/history.json" <<'PYEOF'
import json, re, sys
name, log, hist = sys.argv[1:4]
text = open(log).read()
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", text).group(1)
rows = json.load(open(hist))["rows"]
rates = [r["cells_per_s"] for r in rows[1:]] or [r["cells_per_s"] for r in rows]
rate = sum(rates) / len(rates)
print(f"  {name}: peak RSS {rss_kb / 2**20:.2f} GiB ({rss_kb} KB), {rate:.2f} cells/s, wall {wall}")
open(f"{log}.rate", "w").write(f"{rate}\n")
PYEOF
}

if has sim; then
  echo "== simulate"
  simulate big "$BIG_CELLS" "$GENES"
  simulate fit "$FIT_CELLS" "$GENES"
fi

if has train; then
  echo "== train: tiny U-Net, batch $BATCH, $STEPS steps, $THREADS thread(s)"
  train mem_fit "$OUT/fit.h5ad"
  train stream_fit "$OUT/fit.h5ad" --stream
  train stream_big "$OUT/big.h5ad" --stream
  python3 - "$OUT" <<'PYEOF'
import sys
out = sys.argv[1]
r = {n: float(open(f"{out}/{n}.log.rate").read()) for n in ["mem_fit", "stream_fit", "stream_big"]}
print(f"  throughput streamed / in memory: same file {r['stream_fit'] / r['mem_fit']:.3f}, "
      f"big file {r['stream_big'] / r['mem_fit']:.3f}")
PYEOF
fi

if has shuffle; then
  echo "== shuffle: tiny MLP, 20,000 x 200, combination split, 600 steps of 64"
  S=$OUT/shuffle
  mkdir -p "$S"
  if [ ! -f "$S/random.h5ad" ]; then
    "$BIN" simulate --cells 20000 --genes 200 --seed 7 --threads 2 --out "$S/random.h5ad" > /dev/null
    "$PY" - "$S/random.h5ad" "$S/sorted.h5ad" <<'PYEOF'
import sys, warnings
warnings.simplefilter("ignore")
import anndata
ad = anndata.read_h5ad(sys.argv[1])
del ad.layers["counts"]
order = ad.obs.sort_values(["condition", "cell_type"], kind="stable").index
ad[order].copy().write_h5ad(sys.argv[2])
PYEOF
  fi
  for order in random sorted; do
    "$BIN" split --task combination --seed 1 --out "$S/$order.csv" "$S/$order.h5ad" > /dev/null
    for c in "mem_seed0|--seed 0" "mem_seed1|--seed 1" "stream_whole|--seed 0 --stream --stream-chunk 256 --stream-buffer 1000" \
             "stream_4x256|--seed 0 --stream --stream-chunk 256 --stream-buffer 4" \
             "stream_1x1024|--seed 0 --stream --stream-chunk 1024 --stream-buffer 1"; do
      name=${c%%|*}
      run=$S/run_${order}_$name
      rm -rf "$run"
      # shellcheck disable=SC2086
      "$BIN" train --data "$S/$order.h5ad" --split "$S/$order.csv" --model mlp --preset tiny \
        --steps 600 --batch-size 64 --val-every 150 --log-every 50 --threads "$THREADS" \
        --device cpu --quiet --out "$run" ${c#*|} > /dev/null
      python3 - "$order" "$name" "$run/history.json" <<'PYEOF'
import json, sys
order, name, hist = sys.argv[1:4]
rows = json.load(open(hist))["rows"]
val = [f"{r['val_loss']:.4f}" for r in rows if r.get("val_loss") is not None]
last = [r["loss"] for r in rows if r["step"] > 400]
print(f"  {order:6} {name:14} train loss (steps 401-600) {sum(last) / len(last):.4f}, validation loss at 150/300/450/600: {' '.join(val)}")
PYEOF
    done
  done
fi
[ "${KEEP:-0}" = 1 ] || rm -f "$OUT"/*.h5ad "$OUT"/shuffle/*.h5ad
