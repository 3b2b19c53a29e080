#!/usr/bin/env bash
# Read benchmark (not a test): primeflow vs Python anndata on one .h5ad.
#
#   bench/read_h5ad.sh [FILE.h5ad]
#
# Without FILE it makes target/bench/big_178k_2000.h5ad (178,000 x 2,000 CSR
# float32, Srivatsan20 scale) with `primeflow simulate` when that works, else
# with bench/make_big_h5ad.py. Then, on a warm page cache and in one run:
#   * primeflow: `primeflow info --load` = read_h5ad (X stays CSR in memory
#     when the file's is, as training holds it; before issue 9 it was
#     densified), with its time and peak RSS (VmHWM);
#   * Python: anndata.read_h5ad(FILE) as users call it (X stays sparse; it
#     also loads every layer), X alone via anndata's read_elem (what primeflow
#     loads), and separately what densifying X (.toarray()) costs on top.
# Prints both times, their ratio, and peak memory relative to n*m*4 bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BIN=target/release/primeflow
OUT=target/bench
mkdir -p "$OUT"
[ -x "$BIN" ] || cargo build --release

FILE=${1:-}
if [ -z "$FILE" ]; then
  FILE=$OUT/big_178k_2000.h5ad
  if [ ! -f "$FILE" ]; then
    echo "making $FILE ..."
    if ! "$BIN" simulate --cells 178000 --genes 2000 --out "$FILE"; then
      echo "(primeflow simulate unavailable; using bench/make_big_h5ad.py)"
      "$PY" bench/make_big_h5ad.py "$FILE"
    fi
  fi
fi
[ -f "$FILE" ] || { echo "no such file: $FILE" >&2; exit 2; }

REPEAT=${REPEAT:-3} # each reader runs this often; the fastest run counts
cat "$FILE" > /dev/null # warm the page cache for both readers
echo "== primeflow ($BIN info --load, best of $REPEAT)"
for i in $(seq "$REPEAT"); do
  "$BIN" info --json --load "$FILE" > "$OUT/primeflow_load_$i.json"
done
echo "== python anndata (best of $REPEAT)"
"$PY" - "$FILE" "$OUT" "$REPEAT" <<'PYEOF'
import json, platform, resource, sys, time, warnings
warnings.simplefilter("ignore")
import anndata, scipy.sparse as sp

try:
    from anndata.io import read_elem
except ImportError:  # anndata < 0.11
    from anndata.experimental import read_elem
import h5py

path, out, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])

def best(f):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = f()
        times.append(time.perf_counter() - t0)
    return min(times), r

def read_x():
    with h5py.File(path, "r") as f:
        return read_elem(f["X"])

# X alone (what primeflow loads), then the whole file as users call it.
t_x, X = best(read_x)
del X
t_read, a = best(lambda: anndata.read_h5ad(path))
rss_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
d = a.X.toarray() if sp.issparse(a.X) else a.X
t_dense = time.perf_counter() - t0
rss_dense = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
layers = list(a.layers.keys())

runs = [json.load(open(f"{out}/primeflow_load_{i + 1}.json")) for i in range(repeat)]
pf = runs[0]
n, m = pf["n_obs"], pf["n_vars"]
dense = n * m * 4
load = min((r["load"] for r in runs), key=lambda l: l["seconds"])
load["peak_rss_bytes"] = max(r["load"]["peak_rss_bytes"] for r in runs)
gib = lambda b: b / 2**30
print(f"file: {path}  ({n} x {m}, X {pf['x']['encoding']} {pf['x']['dtype']}, nnz {pf['x']['nnz']})")
import os
print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; dense matrix n*m*4 = {gib(dense):.2f} GiB")
print(f"primeflow read_h5ad (X as stored):   {load['seconds']:7.2f} s   peak RSS {gib(load['peak_rss_bytes']):.2f} GiB"
      f" = {load['peak_rss_bytes'] / dense:.2f}x dense"
      f" ({(load['peak_rss_bytes'] - load['baseline_rss_bytes']) / dense:.2f}x above the {gib(load['baseline_rss_bytes']):.2f} GiB before loading)")
print(f"anndata read_elem(X) (X only, sparse): {t_x:7.2f} s")
print(f"anndata.read_h5ad (X sparse, layers {layers}): {t_read:7.2f} s   peak RSS {gib(rss_read):.2f} GiB")
print(f"  + X.toarray() (densify):           {t_dense:7.2f} s   peak RSS {gib(rss_dense):.2f} GiB = {rss_dense / dense:.2f}x dense")
print(f"ratio primeflow / anndata.read_h5ad: {load['seconds'] / t_read:.2f}")
print(f"ratio primeflow / read_elem(X):      {load['seconds'] / t_x:.2f}")
print(f"ratio primeflow / (read_h5ad + toarray): {load['seconds'] / (t_read + t_dense):.2f}")
PYEOF
