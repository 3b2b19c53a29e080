"""Writes a simulated Virtual-Cell-Challenge-shaped real/predicted pair for
bench/vcc/run.sh (primeflow evaluate --profile vcc vs cell-eval run).

usage: make_data.py OUTDIR [--perts 150] [--cells 300] [--controls 1000]
                           [--genes 18080] [--seed 0]

Each file: obs `target_gene` (perturbations named after genes, control
`non-targeting`), var G0..; X float32 CSR = log1p(counts / library * 1e4)
of Poisson counts whose gene rates are skewed (most genes sparse). A
perturbation changes the rate of 60 genes (x3 or /3) and knocks its target
gene down; the prediction has half the effects, other noise and its own
control cells. Built per group so memory stays near the sparse size.
"""
import argparse
import os

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp


def write(path, rng, base, perts, a, effect, noise):
    blocks, labels = [], []
    for p in range(len(perts) + 1):
        rate = base.copy()
        if p < len(perts):
            # Seeded per perturbation so real and pred share the true genes.
            g = np.random.default_rng(1000 + p).choice(a.genes, 60, replace=False)
            rate[g[:30]] *= effect
            rate[g[30:]] /= effect
            rate[perts[p]] *= 0.2
            n, label = a.cells, f"G{perts[p]}"
        else:
            n, label = a.controls, "non-targeting"
        rate *= np.exp(noise * (rng.random(a.genes) - 0.5))
        c = rng.poisson(rate, size=(n, a.genes)).astype(np.float32)
        lib = np.maximum(c.sum(axis=1, keepdims=True), 1.0)
        x = np.log1p(c / lib * 1e4).astype(np.float32)
        blocks.append(sp.csr_matrix(x))
        labels += [label] * n
    X = sp.vstack(blocks, format="csr")
    obs = pd.DataFrame(
        {"target_gene": pd.Categorical(labels)},
        index=[f"c{i}" for i in range(len(labels))],
    )
    var = pd.DataFrame(index=[f"G{j}" for j in range(a.genes)])
    anndata.AnnData(X=X, obs=obs, var=var).write_h5ad(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--perts", type=int, default=150)
    ap.add_argument("--cells", type=int, default=300)
    ap.add_argument("--controls", type=int, default=1000)
    ap.add_argument("--genes", type=int, default=18_080)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    base = 0.02 + 8.0 * rng.random(a.genes) ** 4  # mostly sparse genes
    perts = rng.choice(a.genes, a.perts, replace=False)
    write(os.path.join(a.outdir, "real.h5ad"), rng, base, perts, a, 3.0, 0.1)
    write(os.path.join(a.outdir, "pred.h5ad"), rng, base, perts, a, 1.7, 0.5)


if __name__ == "__main__":
    main()
