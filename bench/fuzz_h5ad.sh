#!/usr/bin/env bash
# Mutation-fuzz benchmark (not a CI test): the fuzz test's long campaign.
#
#   bench/fuzz_h5ad.sh [SECONDS] [SEED]      (default 600 s, seed 1)
#
# Rounds of 200 mutated copies of ../shared/data/devel.h5ad (1-64 bytes
# changed, half in HDF5 metadata) go through `primeflow info --json`, `split`
# and (1 file in 5) `evaluate`, each command its own process with a 30 s
# timeout, until SECONDS have passed (see tests/suite/fuzz.rs). Any segfault,
# abort, hang or panic fails it. The summary (files, runs, outcomes per
# command, the most common error messages, failures with seed and file
# number) goes to docs/results/fuzz_h5ad.md.
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
SEED=${2:-1}
mkdir -p target/bench docs/results
REPORT=target/bench/fuzz_h5ad.txt
rm -f "$REPORT"
PRIMEFLOW_FUZZ_SECONDS=$SECS PRIMEFLOW_FUZZ_SEED=$SEED PRIMEFLOW_FUZZ_REPORT=$REPORT \
  cargo test --release --test suite fuzz::mutated_devel_long -- --ignored --exact --nocapture
status=$?
[ -f "$REPORT" ] || { echo "fuzz_h5ad: no report (cargo test exited $status)" >&2; exit 1; }
{
  echo "# Mutation fuzzing of .h5ad reading (bench/fuzz_h5ad.sh)"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs (load average $(cut -d' ' -f1 /proc/loadavg) at the end),"
  echo "$(target/release/primeflow --version 2>/dev/null || echo primeflow), budget ${SECS} s, seed ${SEED}."
  echo "Each run is one command in its own (forked) process with a 30 s timeout;"
  echo "a failure is a signal death (segfault, abort, OOM kill), a timeout or a panic."
  echo
  echo '```'
  cat "$REPORT"
  echo '```'
} > docs/results/fuzz_h5ad.md
cat docs/results/fuzz_h5ad.md
exit $status
