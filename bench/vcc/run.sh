#!/usr/bin/env bash
# primeflow evaluate --profile vcc vs cell-eval 0.8.2 (`cell-eval run
# --profile vcc`) on the same simulated VCC-shaped pair, in one run, same
# machine, same thread count; prints both times, their ratio and the largest
# difference between the two tools' reported values.
#
# cell-eval2 (Arc's GPU-oriented reimplementation, 0.20.0, CPU path with
# pdex's DE) is timed too, from its own venv (CE2_VENV, default
# ~/.cache/primeflow/venv-cell-eval2, installed on first use; CELL_EVAL2=0
# skips it); its values are compared with cell-eval's per metric.
#
# Size (env): PERTS (default 50), CELLS per perturbation (150), CONTROLS
# (1000), GENES (18080), THREADS (2). The challenge's size is PERTS=150
# CELLS=300; it needs ~7 GB per tool in memory and cell-eval takes tens of
# minutes on 2 cores, hence the smaller default (docs/results/vcc_metrics.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PERTS=${PERTS:-50}
CELLS=${CELLS:-150}
CONTROLS=${CONTROLS:-1000}
GENES=${GENES:-18080}
THREADS=${THREADS:-2}
PY=.venv/bin/python
if ! "$PY" -c "import cell_eval" >/dev/null 2>&1; then
  echo "skipped: cell-eval is not installed in .venv (./setup.sh --python)"
  exit 0
fi
cargo build --release -q
BIN=target/release/primeflow
D=target/bench-vcc/${PERTS}x${CELLS}_${CONTROLS}c_${GENES}g
if [ ! -f "$D/pred.h5ad" ]; then
  echo "writing $D (simulated, CSR float32)"
  "$PY" bench/vcc/make_data.py "$D" --perts "$PERTS" --cells "$CELLS" \
    --controls "$CONTROLS" --genes "$GENES"
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data: $PERTS perturbations x $CELLS cells + $CONTROLS controls, $GENES genes; threads $THREADS"
# Both tools read the files from a warm page cache (the first reader would
# otherwise pay for the disk).
cat "$D/real.h5ad" "$D/pred.h5ad" >/dev/null
now() { date +%s.%N; }
t0=$(now)
OMP_NUM_THREADS=1 "$BIN" evaluate --profile vcc --ref "$D/real.h5ad" --pred "$D/pred.h5ad" \
  --threads "$THREADS" --json "$D/primeflow.json" --quiet >/dev/null
t1=$(now)
rm -rf "$D/cell-eval"
.venv/bin/cell-eval run -ap "$D/pred.h5ad" -ar "$D/real.h5ad" --profile vcc \
  --num-threads "$THREADS" --pert-col target_gene --control-pert non-targeting \
  -o "$D/cell-eval" >"$D/cell-eval.log" 2>&1
t2=$(now)
"$PY" - "$D" "$t0" "$t1" "$t2" <<'PYEOF'
import json, sys
import polars as pl
d, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
r = json.load(open(f"{d}/primeflow.json"))
res = pl.read_csv(f"{d}/cell-eval/results.csv")
agg = pl.read_csv(f"{d}/cell-eval/agg_results.csv")
diff = 0.0
for m in r["metrics"]:
    ours = dict(zip(r["perturbations"], m["values"]))
    for p, v in zip(res["perturbation"], res[m["name"]]):
        diff = max(diff, abs(ours[p] - v))
    for a, b in zip(m["summary"], agg[m["name"]]):
        diff = max(diff, abs(a - b))
    print(f"  {m['name']:<26} mean {m['summary'][2]:.6f}")
pf, ce = t1 - t0, t2 - t1
print(f"primeflow {pf:.1f} s, cell-eval {ce:.1f} s: {ce / pf:.1f}x; "
      f"largest difference of a reported value {diff:.2e}")
PYEOF

if [ "${CELL_EVAL2:-1}" != 1 ]; then
  exit 0
fi
CE2_VENV=${CE2_VENV:-$HOME/.cache/primeflow/venv-cell-eval2}
if [ ! -x "$CE2_VENV/bin/cell-eval2" ]; then
  if ! { python3 -m venv "$CE2_VENV" \
      && "$CE2_VENV/bin/pip" install -q --disable-pip-version-check "cell-eval2==0.20.0" "pdex==0.3.0"; }; then
    echo "skipped cell-eval2: it could not be installed into $CE2_VENV"
    exit 0
  fi
fi
rm -rf "$D/cell-eval2"
t3=$(now)
"$CE2_VENV/bin/cell-eval2" run -ap "$D/pred.h5ad" -ar "$D/real.h5ad" --profile vcc \
  --pert-col target_gene --control non-targeting --input-type lognorm --version v1 \
  --set de.backend=pdex --set num_threads="$THREADS" -o "$D/cell-eval2" >"$D/cell-eval2.log" 2>&1
t4=$(now)
"$PY" - "$D" "$t0" "$t1" "$t3" "$t4" <<'PYEOF'
import json, sys
import polars as pl
d, t0, t1, t3, t4 = sys.argv[1], *map(float, sys.argv[2:])
r = json.load(open(f"{d}/primeflow.json"))
res = pl.read_csv(f"{d}/cell-eval2/results.csv")
ce2 = {(p, m): v for p, m, v in zip(res["perturbation"], res["metric"], res["value"])}
for m in r["metrics"]:
    diff = max(abs(v - ce2[(p, m["name"])]) for p, v in zip(r["perturbations"], m["values"]))
    print(f"  cell-eval2 vs cell-eval/primeflow, {m['name']:<24} largest difference {diff:.2e}")
pf, ce2t = t1 - t0, t4 - t3
print(f"primeflow {pf:.1f} s, cell-eval2 {ce2t:.1f} s: {ce2t / pf:.1f}x")
PYEOF
