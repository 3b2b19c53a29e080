#!/usr/bin/env bash
# Idempotent set-up for primeflow: libtorch (from PyPI's torch==2.11.0, the
# version tch 0.24 needs), CMake for the bundled HDF5, and the Python test
# tools.
#
#   ./setup.sh            core set-up (libtorch, cmake)
#   ./setup.sh --python   also the Python packages the test suite and the
#                         benchmarks compare against (anndata, scanpy, scipy,
#                         scikit-learn, POT for the optimal-transport tests)
#                         and drive the Jupyter kernel with (jupyter_client,
#                         nbclient, nbconvert, nbformat)
#
# The torch virtual environment lives in a per-user cache shared by every
# clone (PRIMEFLOW_CACHE, default ~/.cache/primeflow), and the project links to
# it through two git-ignored symlinks: .venv (the environment) and .libtorch
# (its torch package, which .cargo/config.toml points LIBTORCH at). Nothing has
# to be exported by the user. Quick when everything is present.
#
# HDF5 is not a system package: hdf5-metno's `static` feature builds the HDF5
# (2.2) bundled in hdf5-metno-src during `cargo build`, with CMake >= 3.26.
# Debian 12's cmake is 3.25, so PyPI's cmake goes into the venv and
# .cargo/config.toml points CMAKE at it.
set -euo pipefail
cd "$(dirname "$0")"

TORCH_VERSION=2.11.0
CACHE="${PRIMEFLOW_CACHE:-$HOME/.cache/primeflow}"
VENV="$CACHE/venv-torch-$TORCH_VERSION"
want_python=0
for a in "$@"; do
  case "$a" in
    --python) want_python=1 ;;
    *) echo "setup.sh: unknown option '$a' (known: --python)" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*"; }

# 1. Debian packages: pkg-config (a C compiler is needed too; Rust's
#    toolchain set-up provides it). No libhdf5-dev: HDF5 is built from source.
need_apt=()
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null
  }
fi

# 2. The torch venv (libtorch with its CUDA libraries: libtorch_cpu needs
#    libcudart even on CPU-only machines).
PY="$VENV/bin/python"
if ! "$PY" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" >/dev/null 2>&1; then
  say "installing torch==$TORCH_VERSION into $VENV (about 1-2 minutes, 4.6 GB)"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION" numpy
fi
# 3. CMake for the bundled HDF5 (about 5 s).
if ! "$VENV/bin/cmake" --version >/dev/null 2>&1; then
  say "installing cmake (PyPI) into $VENV for the bundled HDF5"
  "$VENV/bin/pip" install -q --disable-pip-version-check "cmake>=3.26,<5"
fi
TORCH_DIR="$("$PY" -c 'import torch,os; print(os.path.dirname(torch.__file__))')"
ln -sfn "$VENV" .venv
ln -sfn "$TORCH_DIR" .libtorch

# Clippy (make test lints with it); rustup's default profile has it.
if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
  say "installing clippy (rustup component)"
  rustup component add clippy
fi

# 4. Python packages used by the interoperability tests and benchmarks.
if [ "$want_python" -eq 1 ]; then
  if ! "$PY" -c "import anndata, scanpy, scipy, h5py, ot, sklearn" >/dev/null 2>&1; then
    say "installing anndata, scanpy, scipy, scikit-learn and POT into $VENV (about 30 s)"
    "$VENV/bin/pip" install -q --disable-pip-version-check anndata scanpy scipy h5py pot scikit-learn
  fi
  # The kernel tests: jupyter_client drives `primeflow kernel`, nbconvert
  # executes the Rhai notebook headless (no ipykernel needed).
  if ! "$PY" -c "import jupyter_client, nbclient, nbconvert, nbformat, zmq" >/dev/null 2>&1; then
    say "installing jupyter_client, nbclient, nbconvert and nbformat into $VENV (about 20 s)"
    "$VENV/bin/pip" install -q --disable-pip-version-check jupyter_client nbclient nbconvert nbformat
  fi
  # The cell-eval agreement test and benchmark (evaluate --profile vcc):
  # the Virtual Cell Challenge's scorer, pinned to the version matched.
  if ! "$PY" -c "import cell_eval" >/dev/null 2>&1; then
    say "installing cell-eval 0.8.2 into $VENV (about 20 s)"
    "$VENV/bin/pip" install -q --disable-pip-version-check cell-eval==0.8.2
  fi
fi
say "ready: libtorch at $TORCH_DIR"
