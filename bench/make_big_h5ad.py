"""Writes a synthetic CSR float32 .h5ad for the read benchmark (used by
bench/read_h5ad.sh when `primeflow simulate` is unavailable).

usage: make_big_h5ad.py OUT.h5ad [--cells 178000] [--genes 2000] [--density 0.1] [--seed 0]

Values are log1p of 1 + Poisson(2) counts at about `density` of the entries
(log1p-like, 0.69-3), obs has `condition` and `cell_type` categoricals, var
the gene names. Built in row blocks so memory stays near the sparse size.
"""
import argparse

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cells", type=int, default=178_000)
    ap.add_argument("--genes", type=int, default=2_000)
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    blocks = []
    for r0 in range(0, a.cells, 10_000):
        b = min(10_000, a.cells - r0)
        mask = rng.random((b, a.genes), dtype=np.float32) < a.density
        rows, cols = np.nonzero(mask)
        vals = np.log1p(1 + rng.poisson(2.0, size=rows.size)).astype(np.float32)
        blocks.append(sp.csr_matrix((vals, (rows, cols)), shape=(b, a.genes), dtype=np.float32))
    X = sp.vstack(blocks, format="csr")
    conds = ["control"] + [f"P{i}" for i in range(60)]
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(rng.choice(conds, size=a.cells)),
            "cell_type": pd.Categorical(rng.choice(["A549", "K562", "MCF7"], size=a.cells)),
        },
        index=[f"cell_{i}" for i in range(a.cells)],
    )
    var = pd.DataFrame(index=[f"gene_{j}" for j in range(a.genes)])
    anndata.AnnData(X=X, obs=obs, var=var).write_h5ad(a.out)
    print(f"wrote {a.out}: {a.cells} x {a.genes}, {X.nnz} non-zeros")


if __name__ == "__main__":
    main()
