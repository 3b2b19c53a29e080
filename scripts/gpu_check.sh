#!/usr/bin/env bash
# GPU check of PRiMeFlow training and sampling (issue 3, "Devices and precision").
#
# Run on a CUDA machine from the repository root, with a built binary:
#   scripts/gpu_check.sh
# A binary built elsewhere works too (no Rust needed on the GPU machine):
#   PRIMEFLOW=./primeflow \
#   LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/torch/lib \
#   scripts/gpu_check.sh
#
# It simulates data at m = 2000 genes, trains the srivatsan20 U-Net on CUDA
# for a few hundred steps, and reports the card, step time, cells/s, achieved
# TFLOP/s (313 GFLOP per cell forward+backward, model.md), whether the loss
# fell, guided sampling (w = 3) and peak GPU memory (nvidia-smi polling).
# Designed to finish in about 5 minutes on an H100. Settings (environment):
#   STEPS=300 BATCH=64 ACCUM=1 PRECISION=fp32|bf16 CELLS=20000 PRESET=srivatsan20
#   SAMPLE_CELLS=256 SAMPLE_STEPS=50 OUT=out/gpu_check PYTHON=python3
# A CPU smoke test of the script itself (no GPU numbers):
#   DEVICE=cpu PRESET=tiny STEPS=30 CELLS=600 SAMPLE_STEPS=5 scripts/gpu_check.sh
set -euo pipefail

BIN=${PRIMEFLOW:-target/release/primeflow}
OUT=${OUT:-out/gpu_check}
STEPS=${STEPS:-300}
BATCH=${BATCH:-64}
ACCUM=${ACCUM:-1}
PRECISION=${PRECISION:-fp32}
CELLS=${CELLS:-20000}
GENES=${GENES:-2000}
PRESET=${PRESET:-srivatsan20}
DEVICE=${DEVICE:-cuda}
SAMPLE_CELLS=${SAMPLE_CELLS:-256}
SAMPLE_STEPS=${SAMPLE_STEPS:-50}
GFLOP_PER_CELL=313   # forward+backward, srivatsan20 at m = 2000 (model.md)
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 /opt/torch/.venv/bin/python python; do
    if command -v "$c" >/dev/null 2>&1; then PY=$c; break; fi
  done
fi

die() { echo "gpu_check: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no primeflow binary at $BIN (build with cargo build --release, or set PRIMEFLOW=)"
SMI=true
if [ "$DEVICE" = cpu ]; then
  SMI=false
else
  command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: this check needs a CUDA machine"
fi
[ -n "$PY" ] || die "no python found (needed to read the JSON history)"
mkdir -p "$OUT"
rm -rf "$OUT/run"

echo "== card"
if $SMI; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; else echo "cpu ($(nproc) cores)"; fi
"$BIN" --version

echo "== data: $CELLS cells x $GENES genes"
DATA="$OUT/sim.h5ad"
if [ ! -f "$DATA" ]; then
  if ! "$BIN" simulate --cells "$CELLS" --genes "$GENES" --out "$DATA" >"$OUT/simulate.log" 2>&1; then
    echo "primeflow simulate unavailable ($(tail -1 "$OUT/simulate.log")); numpy fallback"
    "$PY" - "$DATA" "$CELLS" "$GENES" <<'EOF'
# Minimal Perturb-seq-like data: 10 singles, 5 doubles, controls; log1p of
# Poisson counts around perturbation-shifted means. Dense AnnData >= 0.8.
import sys, numpy as np
path, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
singles = [f"P{i:02d}" for i in range(10)]
labels = ["control"] + singles + [f"P{2*i:02d}+P{2*i+1:02d}" for i in range(5)]
base = rng.gamma(0.6, 1.5, m)
effect = {p: np.exp(rng.normal(0, 0.7, m) * (rng.random(m) < 0.1)) for p in singles}
cond = rng.integers(0, len(labels), n)
X = np.empty((n, m), np.float32)
for i, c in enumerate(cond):
    mu = base.copy()
    for p in labels[c].split("+"):
        if p != "control":
            mu *= effect[p]
    X[i] = np.log1p(rng.poisson(mu))
try:
    import anndata, pandas as pd
    obs = pd.DataFrame({"condition": pd.Categorical([labels[c] for c in cond]),
                        "cell_type": pd.Categorical(["sim"] * n)}, index=[f"c{i}" for i in range(n)])
    anndata.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"G{g:04d}" for g in range(m)])).write_h5ad(path)
except ImportError:
    import h5py
    s = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"; f.attrs["encoding-version"] = "0.1.0"
        f.create_dataset("X", data=X).attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        def frame(name, index, cols):
            g = f.create_group(name)
            g.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
            g.attrs.create("column-order", np.array(list(cols), dtype=object), dtype=s)
            g.create_dataset("_index", data=np.array(index, dtype=object), dtype=s).attrs.update(
                {"encoding-type": "string-array", "encoding-version": "0.2.0"})
            for k, (codes, cats) in cols.items():
                c = g.create_group(k)
                c.attrs.update({"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False})
                c.create_dataset("codes", data=np.asarray(codes, np.int8))
                c.create_dataset("categories", data=np.array(cats, dtype=object), dtype=s).attrs.update(
                    {"encoding-type": "string-array", "encoding-version": "0.2.0"})
        frame("obs", [f"c{i}" for i in range(n)],
              {"condition": (cond, labels), "cell_type": (np.zeros(n), ["sim"])})
        frame("var", [f"G{g:04d}" for g in range(m)], {})
        for k in ("layers", "obsm", "varm", "obsp", "varp", "uns"):
            f.create_group(k).attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
EOF
  fi
fi

echo "== train: $PRESET U-Net, $STEPS steps x $BATCH cells x $ACCUM, $PRECISION"
MEMLOG="$OUT/memory.log"
: >"$MEMLOG"
BASE_MEM=0
POLL=
if $SMI; then
  BASE_MEM=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$MEMLOG" 2>/dev/null &
  POLL=$!
  trap 'kill $POLL 2>/dev/null || true' EXIT
fi
T0=$(date +%s.%N)
"$BIN" train --data "$DATA" --model unet --preset "$PRESET" --task combination \
  --steps "$STEPS" --batch-size "$BATCH" --grad-accum "$ACCUM" --precision "$PRECISION" \
  --log-every 25 --checkpoint-every 0 --device "$DEVICE" --quiet --out "$OUT/run"
T1=$(date +%s.%N)

echo "== sample: w = 3, $SAMPLE_STEPS Euler steps, $SAMPLE_CELLS cells for each of 2 conditions"
CONDS=$("$PY" - "$OUT/run" <<'EOF'
import json, os, sys
d = sys.argv[1]; d = os.path.join(d, open(os.path.join(d, "latest")).read().strip())
v = json.load(open(os.path.join(d, "vocab.json")))
p, c = v["perturbations"], [vals[0] for vals in v["covariates"]]
cov = ", ".join(c)
print(f"{p[0]} @ {cov};{p[0]}+{p[1]} @ {cov}" if cov else f"{p[0]};{p[0]}+{p[1]}")
EOF
)
S0=$(date +%s.%N)
"$BIN" sample --checkpoint "$OUT/run" --conditions "$CONDS" --cells-per-unit "$SAMPLE_CELLS" \
  --guidance 3 --steps "$SAMPLE_STEPS" --device "$DEVICE" --quiet --out "$OUT/pred_w3.h5ad"
S1=$(date +%s.%N)
if [ -n "$POLL" ]; then kill "$POLL" 2>/dev/null || true; sleep 0.3; fi

echo "== report"
"$PY" - "$OUT/run/history.json" "$MEMLOG" "$BASE_MEM" "$GFLOP_PER_CELL" "$T0" "$T1" "$S0" "$S1" \
  "$BATCH" "$ACCUM" "$SAMPLE_CELLS" "$SAMPLE_STEPS" <<'EOF'
import json, sys
hist, memlog, base, gflop, t0, t1, s0, s1, b, k, sc, ss = sys.argv[1:]
h = json.load(open(hist)); rows = h["rows"]
cells_per_step = int(b) * int(k)
steady = rows[1:] or rows          # the first interval includes CUDA warm-up
rate = sum(r["cells_per_s"] for r in steady) / len(steady)
first = sum(r["loss"] for r in rows[:2]) / len(rows[:2])
last = sum(r["loss"] for r in rows[-2:]) / len(rows[-2:])
mem = [int(x) for x in open(memlog).read().split() if x.strip().isdigit()]
print(f"steps {h['final_step']}, {cells_per_step} cells/step")
print(f"step time {cells_per_step / rate * 1000:.1f} ms, {rate:.1f} cells/s (steady state)")
print(f"achieved {rate * float(gflop) / 1000:.1f} TFLOP/s at {gflop} GFLOP/cell (forward+backward)")
print(f"loss {first:.4f} -> {last:.4f}: {'falls' if last < first else 'DOES NOT FALL'}")
print(f"train wall time {float(t1) - float(t0):.1f} s (including data loading and start-up)")
n = 2 * int(sc)
print(f"sampling w = 3: {n} cells x {ss} steps in {float(s1) - float(s0):.1f} s")
if mem:
    print(f"peak GPU memory {max(mem)} MiB (nvidia-smi, whole card; {base} MiB before training)")
sys.exit(0 if last < first else 1)
EOF
