#!/usr/bin/env bash
# Sets up the notebooks' Jupyter kernels and executes the notebooks
# headless; exits non-zero when a cell errors. Idempotent: steps already
# done are skipped. `make notebooks` runs it.
#
#   notebooks/run.sh                   # every notebooks/*.ipynb, the Rhai one first
#   notebooks/run.sh quickstart_rhai   # one notebook (the Rhai one needs no evcxr)
#
# Each notebook names its kernel in metadata.kernelspec.name:
#   * `primeflow` (quickstart_rhai.ipynb): the Rhai kernel of this build,
#     `target/release/primeflow kernel install`; seconds to set up;
#   * `rust` (quickstart.ipynb, guidance_sweep.ipynb): evcxr. First run:
#     about 9 minutes for evcxr_jupyter, then about 5 for the kernel's first
#     build of primeflow; later runs reuse both. Only set up when a selected
#     notebook needs it.
#
# What it does:
#   1. Jupyter's headless pieces (nbclient, nbconvert, nbformat,
#      jupyter_client) from PyPI into the project venv (.venv, from ./setup.sh);
#   2. kernel specs under target/jupyter (JUPYTER_PATH): the Rhai kernel's,
#      and for evcxr `cargo install --locked evcxr_jupyter@0.22.0` (into
#      ~/.cargo/bin) with a kernel.json given the environment the `:dep`
#      build of primeflow and its loading need (toolchain.md): LIBTORCH (+
#      CXX11 ABI), VIRTUAL_ENV, the venv first on PATH, LD_LIBRARY_PATH to
#      libtorch, and EVCXR_TMPDIR so both notebooks share one build folder;
#   3. jupyter nbconvert --execute on each notebook with its kernel; executed
#      copies go to target/notebooks/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TORCH="$(readlink -f "$ROOT/.libtorch")"
start=$(date +%s)

if [ ! -x "$PY" ] || [ ! -d "$TORCH/lib" ]; then
    echo "notebooks: the project venv or libtorch is missing; run ./setup.sh first" >&2
    exit 2
fi

# Which notebooks: the Rhai one first.
if [ $# -gt 0 ]; then
    books=()
    for n in "$@"; do books+=("notebooks/${n%.ipynb}.ipynb"); done
else
    books=()
    [ -f notebooks/quickstart_rhai.ipynb ] && books+=(notebooks/quickstart_rhai.ipynb)
    for nb in notebooks/*.ipynb; do
        [ "$nb" = notebooks/quickstart_rhai.ipynb ] || books+=("$nb")
    done
fi
kernel_of() {
    "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["kernelspec"]["name"])' "$1"
}

# 1. Headless Jupyter.
if ! "$PY" -c "import nbclient, nbconvert, nbformat, jupyter_client" 2>/dev/null; then
    echo "notebooks: installing nbclient nbconvert nbformat jupyter_client into $VENV"
    "$PY" -m pip install --quiet nbclient nbconvert nbformat jupyter_client
fi

# 2. The kernel specs, each set up just before the first notebook that
#    needs it (so the Rhai notebook runs before any evcxr install).
export JUPYTER_PATH="$ROOT/target/jupyter"
export JUPYTER_DATA_DIR="$JUPYTER_PATH"
mkdir -p "$JUPYTER_PATH"
rhai_ready=0
setup_rhai() {
    [ "$rhai_ready" -eq 1 ] && return 0
    if [ ! -x "$ROOT/target/release/primeflow" ]; then
        echo "notebooks: target/release/primeflow is missing; run cargo build --release (make notebooks does)" >&2
        exit 2
    fi
    "$ROOT/target/release/primeflow" kernel install --user >/dev/null
    rhai_ready=1
}
rust_ready=0
setup_rust() {
    [ "$rust_ready" -eq 1 ] && return 0
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! cargo install --list | grep -q "^evcxr_jupyter v0\.22\.0"; then
        echo "notebooks: installing evcxr_jupyter 0.22.0 (about 9 minutes)"
        cargo install --locked evcxr_jupyter@0.22.0
    fi
    mkdir -p "$ROOT/target/evcxr"
    evcxr_jupyter --install >/dev/null
    SPEC="$(find "$JUPYTER_PATH" -name kernel.json -path '*rust*' | head -n 1)"
    if [ -z "$SPEC" ]; then
        echo "notebooks: evcxr_jupyter --install wrote no kernel.json under $JUPYTER_PATH" >&2
        exit 1
    fi
    SPEC="$SPEC" TORCH="$TORCH" VENV="$VENV" ROOT="$ROOT" "$PY" - <<'EOF'
import json, os
spec = os.environ["SPEC"]
with open(spec) as f:
    k = json.load(f)
torch, venv, root = os.environ["TORCH"], os.environ["VENV"], os.environ["ROOT"]
k["env"] = {
    "LIBTORCH": torch,
    "LIBTORCH_CXX11_ABI": "1",
    "VIRTUAL_ENV": venv,
    "PATH": f"{venv}/bin:{os.environ['HOME']}/.cargo/bin:/usr/local/bin:/usr/bin:/bin",
    "LD_LIBRARY_PATH": f"{torch}/lib",
    "EVCXR_TMPDIR": f"{root}/target/evcxr",
}
with open(spec, "w") as f:
    json.dump(k, f, indent=1)
EOF
    rust_ready=1
}

# 3. Execute.
mkdir -p "$ROOT/target/notebooks"
status=0
for nb in "${books[@]}"; do
    kernel="$(kernel_of "$nb")"
    case "$kernel" in
        primeflow) setup_rhai ;;
        rust) setup_rust ;;
    esac
    t0=$(date +%s)
    echo "notebooks: executing $nb (kernel $kernel)"
    if "$VENV/bin/jupyter-nbconvert" --to notebook --execute "$nb" \
        --ExecutePreprocessor.kernel_name="$kernel" \
        --ExecutePreprocessor.timeout=1800 \
        --output-dir "$ROOT/target/notebooks"; then
        echo "notebooks: $nb ok in $(( $(date +%s) - t0 )) s"
    else
        echo "notebooks: $nb FAILED (a cell errored) after $(( $(date +%s) - t0 )) s" >&2
        status=1
    fi
done
echo "notebooks: done in $(( $(date +%s) - start )) s"
exit $status
