#!/usr/bin/env bash
# Metrics benchmark (issue 4): `primeflow evaluate` against the Python
# reference in this folder (numpy/scipy/scanpy), same machine, same run.
# Needs ./setup.sh --python and a release build (`make bench` does both).
#   bench/metrics/run.sh [--skip-full] [--device cpu|cuda] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python bench/metrics/bench.py "$@"
