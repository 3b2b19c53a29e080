#!/usr/bin/env bash
# Sets up the evcxr Jupyter kernel and executes the notebooks headless;
# exits non-zero when a cell errors. Idempotent: steps already done are
# skipped. `make notebooks` runs it.
#
#   notebooks/run.sh                 # every notebooks/*.ipynb
#   notebooks/run.sh quickstart      # one notebook
#
# What it does (first run: about 9 minutes for evcxr_jupyter, then about 5
# for the kernel's first build of primeflow; later runs reuse both):
#   1. cargo install --locked evcxr_jupyter@0.22.0 (into ~/.cargo/bin);
#   2. Jupyter's headless pieces (nbclient, nbconvert, nbformat,
#      jupyter_client) from PyPI into the project venv (.venv, from ./setup.sh);
#   3. the kernel spec under target/jupyter (JUPYTER_PATH), its kernel.json
#      given the environment the `:dep` build of primeflow and its loading
#      need (toolchain.md): LIBTORCH (+ CXX11 ABI), VIRTUAL_ENV, the venv first
#      on PATH, LD_LIBRARY_PATH to libtorch, and EVCXR_TMPDIR so both notebooks
#      share one build folder;
#   4. jupyter nbconvert --execute on each notebook; executed copies go to
#      target/notebooks/.
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

# 1. The kernel.
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo install --list | grep -q "^evcxr_jupyter v0\.22\.0"; then
    echo "notebooks: installing evcxr_jupyter 0.22.0 (about 9 minutes)"
    cargo install --locked evcxr_jupyter@0.22.0
fi

# 2. Headless Jupyter.
if ! "$PY" -c "import nbclient, nbconvert, nbformat, jupyter_client" 2>/dev/null; then
    echo "notebooks: installing nbclient nbconvert nbformat jupyter_client into $VENV"
    "$PY" -m pip install --quiet nbclient nbconvert nbformat jupyter_client
fi

# 3. The kernel spec and its environment.
export JUPYTER_PATH="$ROOT/target/jupyter"
export JUPYTER_DATA_DIR="$JUPYTER_PATH"
mkdir -p "$JUPYTER_PATH" "$ROOT/target/evcxr"
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

# 4. Execute.
mkdir -p "$ROOT/target/notebooks"
if [ $# -gt 0 ]; then
    books=()
    for n in "$@"; do books+=("notebooks/${n%.ipynb}.ipynb"); done
else
    books=(notebooks/*.ipynb)
fi
status=0
for nb in "${books[@]}"; do
    t0=$(date +%s)
    echo "notebooks: executing $nb"
    if "$VENV/bin/jupyter-nbconvert" --to notebook --execute "$nb" \
        --ExecutePreprocessor.kernel_name=rust \
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
