"""Synthetic evaluation data for the metrics benchmark: a reference file and a
prediction file of log1p-like sparse expression.

Sizes follow Srivatsan20 in PerturBench (issue 4, section 4): 3 covariates
(`cell_type`), ~190 perturbations each, 300 reference and 1,000 predicted
cells per unit, 300 reference control cells per covariate, 2,000 genes.

Model: per covariate a baseline Poisson rate per gene (most genes sparse);
a perturbation scales the rates of 50 random genes by exp(N(0, 0.7)); the
prediction uses the true effect plus a model error exp(N(0, 0.2)) on every
gene of the unit. Values are log1p(counts), f32, stored as CSR.

    python make_data.py --out DIR [--covs 3 --perts 190 --genes 2000
                                   --ref-cells 300 --pred-cells 1000
                                   --controls 300 --seed 0]
"""

import argparse
import os
import time

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def cells(rng, lam, n):
    """n cells of log1p(Poisson(lam)) as CSR f32."""
    x = rng.poisson(lam[None, :], size=(n, lam.size)).astype(np.float32)
    np.log1p(x, out=x)
    return sp.csr_matrix(x)


def write(path, blocks, labels, covs, genes):
    X = sp.vstack(blocks, format="csr", dtype=np.float32)
    obs = pd.DataFrame(
        {"condition": pd.Categorical(labels), "cell_type": pd.Categorical(covs)},
        index=[f"c{i}" for i in range(X.shape[0])],
    )
    a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    a.write_h5ad(path)
    return X.shape, X.nnz


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--covs", type=int, default=3)
    ap.add_argument("--perts", type=int, default=190)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--ref-cells", type=int, default=300)
    ap.add_argument("--pred-cells", type=int, default=1000)
    ap.add_argument("--controls", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    genes = [f"GENE{j:05d}" for j in range(a.genes)]
    base_rate = rng.gamma(0.6, 0.8, size=a.genes)  # ~60-70 % zeros
    ref_blocks, ref_lab, ref_cov = [], [], []
    pred_blocks, pred_lab, pred_cov = [], [], []
    for c in range(a.covs):
        cov = f"line{c}"
        lam_c = base_rate * np.exp(rng.normal(0, 0.3, size=a.genes))
        ref_blocks.append(cells(rng, lam_c, a.controls))
        ref_lab += ["control"] * a.controls
        ref_cov += [cov] * a.controls
        for p in range(a.perts):
            eff = np.zeros(a.genes)
            hit = rng.choice(a.genes, size=min(50, a.genes), replace=False)
            eff[hit] = rng.normal(0, 0.7, size=hit.size)
            lam = lam_c * np.exp(eff)
            name = f"P{p:03d}"
            ref_blocks.append(cells(rng, lam, a.ref_cells))
            ref_lab += [name] * a.ref_cells
            ref_cov += [cov] * a.ref_cells
            lam_pred = lam * np.exp(rng.normal(0, 0.2, size=a.genes))
            pred_blocks.append(cells(rng, lam_pred, a.pred_cells))
            pred_lab += [name] * a.pred_cells
            pred_cov += [cov] * a.pred_cells
    rs = write(os.path.join(a.out, "ref.h5ad"), ref_blocks, ref_lab, ref_cov, genes)
    ps = write(os.path.join(a.out, "pred.h5ad"), pred_blocks, pred_lab, pred_cov, genes)
    print(f"reference {rs[0]} nnz {rs[1]}; prediction {ps[0]} nnz {ps[1]}; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
