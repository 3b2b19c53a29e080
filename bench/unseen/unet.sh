#!/bin/bash
# The unseen-perturbation result with PRiMeFlow's U-Net (issue 12): one
# simulation seed (S, default 0) of bench/unseen/sim_unet.json (10,000 cells
# x 300 genes, 80 single perturbations, 40 % held out: 16 test), U-Net `cpu`
# preset with the true and the shuffled embedding table, against the
# `control` and `mean` floors; sampled with the fast setting (midpoint, 10
# steps), 300 cells per test perturbation.
#   bench/unseen/unet.sh            (OUT=/tmp/unseen_unet; results in $OUT/results.txt)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(realpath "${PRIMEFLOW:-$HERE/../../target/release/primeflow}"); export OMP_NUM_THREADS=1
S=${S:-0}; STEPS=${STEPS:-1500}; OUT=${OUT:-/tmp/unseen_unet}
D=$OUT/s$S; rm -rf "$D"; mkdir -p "$D"; cd "$D"
$P simulate --config "$HERE/sim_unet.json" --seed "$S" --out sim.h5ad --embeddings > sim.log
$P split sim.h5ad --task unseen --seed 42 --holdout-fraction 0.4 --out split.csv > split.log
for e in embeddings embeddings_shuffled; do
  /usr/bin/time -f "%e s" -o "time_unet_$e.txt" $P train --data sim.h5ad --model unet --preset cpu \
    --split split.csv --steps "$STEPS" --embeddings "sim.$e.tsv" --out "run_unet_$e" --threads 1 --quiet > "train_unet_$e.log"
done
for k in control mean; do
  $P train --data sim.h5ad --model $k --split split.csv --embeddings sim.embeddings.tsv --out "run_$k" --quiet > /dev/null
done
for r in unet_embeddings unet_embeddings_shuffled control mean; do
  $P sample --checkpoint "run_$r" --split split.csv --which test --cells-per-unit 300 \
    --solver midpoint --steps 10 --out "pred_$r.h5ad" --threads 1 --quiet > /dev/null
  $P evaluate --pred "pred_$r.h5ad" --ref sim.h5ad --split split.csv --which test \
    --metrics cosine_logfc,mmd_gex,rmse_average --json "eval_$r.json" --quiet > "eval_$r.txt" 2>&1
  echo "seed $S $r $(grep -E '^  (cos|mmd|rmse)' "eval_$r.txt" | awk '{printf "%s=%s ", $1, $2}') $(cat "time_$r.txt" 2>/dev/null || true)" >> "$OUT/results.txt"
done
echo done >> "$OUT/results.txt"
