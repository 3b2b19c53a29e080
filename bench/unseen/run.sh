#!/bin/bash
# The README's unseen-perturbation result (docs/results/unseen_perturbations.md):
# 3 simulation seeds x {MLP + true embeddings, MLP + shuffled embeddings,
# control floor, mean floor}, scored on the held-out test perturbations.
#   bench/unseen/run.sh            (OUT=/tmp/unseen; results in $OUT/results.txt)
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(realpath "${PRIMEFLOW:-$HERE/../../target/release/primeflow}"); export OMP_NUM_THREADS=1
mkdir -p ${OUT:-/tmp/unseen}; rm -f ${OUT:-/tmp/unseen}/results.txt
for S in 0 1 2; do
 D=${OUT:-/tmp/unseen}/s$S; rm -rf $D; mkdir -p $D; cd $D
 $P simulate --config $HERE/sim.json --seed $S --out sim.h5ad --embeddings > sim.log
 $P split sim.h5ad --task unseen --seed 42 --holdout-fraction 0.4 --out split.csv > split.log
 for e in embeddings embeddings_shuffled; do
   /usr/bin/time -f "%e s" -o time_mlp_$e.txt $P train --data sim.h5ad --model mlp --preset cpu --split split.csv --steps 3000 --embeddings sim.$e.tsv --out run_mlp_$e --threads 1 --quiet > train_mlp_$e.log
 done
 for k in control mean; do $P train --data sim.h5ad --model $k --split split.csv --embeddings sim.embeddings.tsv --out run_$k --quiet > /dev/null; done
 for r in mlp_embeddings mlp_embeddings_shuffled control mean; do
   $P sample --checkpoint run_$r --split split.csv --which test --cells-per-unit 500 --out pred_$r.h5ad --threads 1 --quiet > /dev/null
   $P evaluate --pred pred_$r.h5ad --ref sim.h5ad --split split.csv --which test --metrics cosine_logfc,mmd_gex,rmse_average --json eval_$r.json --quiet > eval_$r.txt 2>&1
   echo "seed $S $r $(grep -E '^  (cos|mmd|rmse)' eval_$r.txt | awk '{printf "%s=%s ", $1, $2}') $(cat time_$r.txt 2>/dev/null)" >> ${OUT:-/tmp/unseen}/results.txt
 done
done
echo done >> ${OUT:-/tmp/unseen}/results.txt
