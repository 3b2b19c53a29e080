"""Writes the devel comparison's files: devel.h5ad's X rounded to f32 (what
primeflow holds, so both sides see the same numbers) as the reference, and
metrics.md's `cyclic` prediction of it (each perturbation predicted by the
cells of the next one of its cell type), controls included.

    python make_devel.py DEVEL.h5ad OUT_DIR
"""
import os
import sys

import anndata as ad

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "metrics"))
import golden_devel  # noqa: E402  (rounded, predictions: metrics.md's worked example)

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
ref = golden_devel.rounded(ad.read_h5ad(src))
ref.write_h5ad(os.path.join(out, "ref.h5ad"))
for name, pred in golden_devel.predictions(ref):
    if name == "cyclic":
        pred.write_h5ad(os.path.join(out, "pred.h5ad"))
