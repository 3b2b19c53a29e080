#!/usr/bin/env bash
# primeflow evaluate against PerturBench's own `Evaluation` (its public
# source, altoslabs/perturbench), same files, same run (issue 9 part 3).
#   bench/perturbench/run.sh [--skip-full] [--skip-dose] [--threads N]
# PerturBench is not on PyPI: set PERTURBENCH_SRC to a checkout, or this
# script clones it (pinned commit) into ~/.cache/primeflow/perturbench; if
# neither works it says so and skips. Two cases: devel (metrics.md's cyclic
# prediction of devel.h5ad) and Srivatsan20 size (bench/metrics/make_data.py:
# 3 cell lines x 190 perturbations, 1,000 predicted / 300 reference cells,
# 2,000 genes; about 3.5 GB of files under bench/out, built once), and
# Srivatsan20 with doses as perturbations (sci-Plex3's 188 compounds x 4
# doses: 3 x 752 units, 300 predicted / 100 reference cells per unit; 4.3
# GB of files; PerturBench takes about 15 minutes and 10.4 GiB there).
# Results: bench/out/perturbench/*.json; docs/results/metrics_benchmark.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
PIN=d357dfa
SKIP_FULL=0
SKIP_DOSE=0
THREADS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-full) SKIP_FULL=1 ;;
    --skip-dose) SKIP_DOSE=1 ;;
    --threads) THREADS="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
SRC="${PERTURBENCH_SRC:-$HOME/.cache/primeflow/perturbench}"
if [ ! -d "$SRC/src/perturbench/analysis" ]; then
  if ! git clone -q https://github.com/altoslabs/perturbench "$SRC" 2>/dev/null \
      || ! git -C "$SRC" checkout -q "$PIN" 2>/dev/null; then
    echo "skipped: PerturBench's source is not available (set PERTURBENCH_SRC to a checkout of altoslabs/perturbench)"
    exit 0
  fi
fi
# plotting.py (imported by evaluation.py) needs adjustText; the rest
# (scanpy, pandas, scikit-learn, seaborn) comes with ./setup.sh --python.
"$PY" -c "import adjustText, seaborn" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check adjustText seaborn
OUT=bench/out/perturbench
mkdir -p "$OUT"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
"$PY" bench/perturbench/make_devel.py ../shared/data/devel.h5ad "$OUT/devel"
"$PY" bench/perturbench/compare.py --perturbench-src "$SRC" --threads "$THREADS" \
  --ref "$OUT/devel/ref.h5ad" --pred "$OUT/devel/pred.h5ad" --out "$OUT/devel.json"
if [ "$SKIP_FULL" = 0 ]; then
  if [ ! -f bench/out/metrics/full/pred.h5ad ]; then
    "$PY" bench/metrics/make_data.py --out bench/out/metrics/full
  fi
  "$PY" bench/perturbench/compare.py --perturbench-src "$SRC" --threads "$THREADS" \
    --ref bench/out/metrics/full/ref.h5ad --pred bench/out/metrics/full/pred.h5ad \
    --out "$OUT/srivatsan.json"
fi
if [ "$SKIP_DOSE" = 0 ]; then
  if [ ! -f bench/out/metrics/dose/pred.h5ad ]; then
    "$PY" bench/metrics/make_data.py --out bench/out/metrics/dose \
      --perts 752 --ref-cells 100 --pred-cells 300 --controls 300
  fi
  "$PY" bench/perturbench/compare.py --perturbench-src "$SRC" --threads "$THREADS" \
    --ref bench/out/metrics/dose/ref.h5ad --pred bench/out/metrics/dose/pred.h5ad \
    --out "$OUT/srivatsan_doses.json"
fi
