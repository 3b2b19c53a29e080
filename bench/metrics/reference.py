"""A straightforward Python reference of PerturBench's metrics.

Written from ../../../shared/docs/metrics.md (not from primeflow's code) with
numpy, scipy and scanpy, in the style of PerturBench itself: one loop per unit
or per (prediction, reference) pair, `scipy.spatial.distance.cdist` for the
energy-kernel MMD, scanpy's `rank_genes_groups(method="t-test_overestim_var")`
for the t-scores, scanpy's PCA on the reference. It is the baseline the
benchmark times `primeflow evaluate` against, and an independent check of
primeflow's numbers.

Conventions (metrics.md; the same choices primeflow documents):
* the prediction's own control cells are dropped and the reference's control
  cells are appended;
* units are (covariate key, perturbation); only units present in both files
  are scored;
* rank ties count half (rows strictly better + half the tied rows); NaN is
  the worst value;
* summaries are means over scored units that skip NaN (as pandas does).

Usage as a script:
    python reference.py --pred PRED.h5ad --ref REF.h5ad [--json OUT.json]
        [--metrics rmse_average,...] [--rank v1|v2] [--pca-components 30]
"""

import argparse
import json
import sys
import time
import warnings

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp
from scipy.spatial.distance import cdist
from scipy.stats import pearsonr

ALL_METRICS = [
    "rmse_average", "rmse_rank_average",
    "mse_average", "mse_rank_average",
    "mae_average", "mae_rank_average",
    "pearson_average", "pearson_rank_average",
    "r2_average", "r2_rank_average",
    "cosine_logfc", "cosine_rank_logfc",
    "pearson_logfc", "pearson_rank_logfc",
    "deg_recall", "deg_recall_rank",
    "mmd_gex", "mmd_gex_rank",
    "mmd_pca", "mmd_pca_rank",
]
DEFAULT_METRICS = [
    "rmse_average", "rmse_rank_average", "cosine_logfc", "cosine_rank_logfc",
    "deg_recall", "deg_recall_rank", "mmd_gex", "mmd_gex_rank", "mmd_pca",
    "mmd_pca_rank",
]
# metric name -> (per-unit metric, aggregation)
PARTS = {
    "rmse_average": ("rmse", "average"), "mse_average": ("mse", "average"),
    "mae_average": ("mae", "average"), "pearson_average": ("pearson", "average"),
    "r2_average": ("r2", "average"), "cosine_logfc": ("cosine", "logfc"),
    "pearson_logfc": ("pearson", "logfc"), "deg_recall": ("top_k_recall", "scores"),
    "mmd_gex": ("mmd", "none"), "mmd_pca": ("mmd", "pca"),
}
SIMILARITY = {"cosine", "pearson", "r2", "top_k_recall"}


RANK_OF = {
    "rmse_rank_average": "rmse_average", "mse_rank_average": "mse_average",
    "mae_rank_average": "mae_average", "pearson_rank_average": "pearson_average",
    "r2_rank_average": "r2_average", "cosine_rank_logfc": "cosine_logfc",
    "pearson_rank_logfc": "pearson_logfc", "deg_recall_rank": "deg_recall",
    "mmd_gex_rank": "mmd_gex", "mmd_pca_rank": "mmd_pca",
}


def base_name(metric):
    """`rmse_rank_average` -> (`rmse_average`, True)."""
    if metric in PARTS:
        return metric, False
    if metric in RANK_OF:
        return RANK_OF[metric], True
    raise ValueError(f"unknown metric {metric}")


def dense(x):
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


# ----- per-unit metrics (metrics.md, "Per-unit metrics") -----

def top_k_recall(x, y, k=50):
    """|top-k(x) & top-k(y)| / k by |value|; ties at the k-th place go to the
    gene listed first (stable sort), so identical vectors give 1."""
    tx = np.argsort(-np.abs(x), kind="stable")[:k]
    ty = np.argsort(-np.abs(y), kind="stable")[:k]
    return len(set(tx.tolist()) & set(ty.tolist())) / k


def r2(pred, ref):
    # PerturBench calls sklearn's r2_score(pred, ref): pred is "y_true".
    ss_res = np.sum((pred - ref) ** 2)
    ss_tot = np.sum((pred - pred.mean()) ** 2)
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def vector_metric(x, y, metric):
    if metric == "rmse":
        return float(np.sqrt(np.mean((x - y) ** 2)))
    if metric == "mse":
        return float(np.mean((x - y) ** 2))
    if metric == "mae":
        return float(np.mean(np.abs(x - y)))
    if metric == "cosine":
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    if metric == "pearson":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(pearsonr(x, y)[0])
    if metric == "r2":
        return r2(x, y)
    if metric == "top_k_recall":
        return top_k_recall(x, y)
    raise ValueError(metric)


def energy_distance_matrix(a, b):
    # d = sqrt(max(|a-b|^2, 1e-8)) as geomloss computes it.
    d2 = cdist(a, b, "sqeuclidean")
    return np.sqrt(np.maximum(d2, 1e-8))


def mmd(x, y, self_x=None, self_y=None):
    """Energy MMD, biased: mean d(x,y) - 1/2 mean d(x,x') - 1/2 mean d(y,y')."""
    if self_x is None:
        self_x = energy_distance_matrix(x, x).mean()
    if self_y is None:
        self_y = energy_distance_matrix(y, y).mean()
    return float(energy_distance_matrix(x, y).mean() - 0.5 * self_x - 0.5 * self_y)


# ----- aggregations (metrics.md, "Aggregations") -----

def unit_table(adata, pert_col, cov_cols, ctrl):
    """{(cov_key, label): row indices} and {cov_key: control rows}."""
    obs = adata.obs
    covs = (obs[cov_cols].astype(str).agg("_".join, axis=1).values
            if cov_cols else np.array([""] * adata.n_obs))
    perts = obs[pert_col].astype(str).values
    units, controls = {}, {}
    groups = {}
    for i, key in enumerate(zip(covs, perts)):
        groups.setdefault(key, []).append(i)
    for (cov, label), rows in groups.items():
        rows = np.asarray(rows)
        if label == ctrl:
            controls[cov] = rows
        else:
            units[(cov, label)] = rows
    return units, controls


def t_scores(adata, units, controls, pert_col, ctrl):
    """Welch t with n_p for both variance terms (scanpy's
    t-test_overestim_var), ddof=1, NaN/inf -> 0, rounded to f32 as scanpy
    stores scores. Plain two-pass NumPy per unit (scanpy's one-pass variance
    adds rounding noise that breaks exact ties between genes)."""
    out = {}
    cstats = {}
    for cov, rows in controls.items():
        xc = dense(adata.X[rows])
        cstats[cov] = (xc.mean(0), xc.var(0, ddof=1))
    for (cov, label), rows in units.items():
        xp = dense(adata.X[rows])
        n = xp.shape[0]
        mc, vc = cstats[cov]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (xp.mean(0) - mc) / np.sqrt(xp.var(0, ddof=1) / n + vc / n)
        t[~np.isfinite(t)] = 0.0
        out[(cov, label)] = t.astype(np.float32).astype(np.float64)
    return out


def evaluate(pred, ref, pert_col="condition", cov_cols=("cell_type",),
             ctrl="control", metrics=None, n_pcs=30, rank="v2", timings=None):
    """Summary {metric: value} plus per-unit values {metric: {unit: v}}."""
    metrics = list(metrics or DEFAULT_METRICS)
    cov_cols = list(cov_cols)
    t0 = time.time()
    pred = pred[:, list(ref.var_names)]
    pred = pred[pred.obs[pert_col].astype(str) != ctrl]
    ref_ctrl = ref[ref.obs[pert_col].astype(str) == ctrl]
    cols = [pert_col] + cov_cols
    pred = ad.AnnData(
        X=sp.vstack([sp.csr_matrix(pred.X), sp.csr_matrix(ref_ctrl.X)]).tocsr(),
        obs=__import__("pandas").concat([pred.obs[cols], ref_ctrl.obs[cols]]).astype(str),
    )
    pred.var_names = ref.var_names
    ref = ad.AnnData(X=sp.csr_matrix(ref.X), obs=ref.obs[cols].astype(str).copy(),
                     var=ref.var[[]].copy())
    pu, pc = unit_table(pred, pert_col, cov_cols, ctrl)
    ru, rc = unit_table(ref, pert_col, cov_cols, ctrl)
    scored = sorted(set(pu) & set(ru))
    only_pred = sorted(set(pu) - set(ru))
    only_ref = sorted(set(ru) - set(pu))

    needed = {PARTS[base_name(m)[0]][1] for m in metrics}
    agg = {}
    if "average" in needed or "logfc" in needed:
        for name, (units, ctl, X) in {"pred": (pu, pc, pred.X), "ref": (ru, rc, ref.X)}.items():
            avg = {u: np.asarray(X[units[u]].mean(0), dtype=np.float64).ravel() for u in scored}
            agg[("average", name)] = avg
            if "logfc" in needed:
                ctrl_mean = {c: np.asarray(X[r].mean(0), dtype=np.float64).ravel() for c, r in ctl.items()}
                lf = {}
                with np.errstate(divide="ignore", invalid="ignore"):
                    for u in scored:
                        v = np.log2(avg[u] + 0.1) - np.log2(ctrl_mean[u[0]] + 0.1)
                        v[~np.isfinite(v)] = 0.0
                        lf[u] = v
                agg[("logfc", name)] = lf
    if timings is not None:
        timings["average+logfc"] = time.time() - t0
    t0 = time.time()
    if "scores" in needed:
        agg[("scores", "pred")] = t_scores(pred, {u: pu[u] for u in scored}, pc, pert_col, ctrl)
        agg[("scores", "ref")] = t_scores(ref, {u: ru[u] for u in scored}, rc, pert_col, ctrl)
    if timings is not None:
        timings["scores"] = time.time() - t0
    t0 = time.time()
    if "pca" in needed:
        # scanpy's PCA on the whole reference (implicit centring for sparse
        # X); both files projected with the reference mean and loadings.
        xr = sp.csr_matrix(ref.X, dtype=np.float64)
        tmp = ad.AnnData(X=xr)
        sc.pp.pca(tmp, n_comps=n_pcs, zero_center=True, dtype="float64")
        loadings = tmp.varm["PCs"]  # [genes, n_pcs]
        mu = np.asarray(xr.mean(0)).ravel()
        shift = mu @ loadings
        agg[("pca", "ref")] = np.asarray(xr @ loadings) - shift
        agg[("pca", "pred")] = np.asarray(sp.csr_matrix(pred.X, dtype=np.float64) @ loadings) - shift
    if timings is not None:
        timings["pca"] = time.time() - t0

    def cells(aggr, who, u):
        units = pu if who == "pred" else ru
        if aggr == "none":
            X = pred.X if who == "pred" else ref.X
            return dense(X[units[u]])
        return agg[("pca", who)][units[u]]

    summary, per_unit = {}, {}
    for m in metrics:
        t0 = time.time()
        base, is_rank = base_name(m)
        metric, aggr = PARTS[base]
        if metric != "mmd":
            P, R = agg[(aggr, "pred")], agg[(aggr, "ref")]
            diag = {u: vector_metric(P[u], R[u], metric) for u in scored}
        if not is_rank:
            if metric == "mmd":
                diag = {u: mmd(cells(aggr, "pred", u), cells(aggr, "ref", u)) for u in scored}
            per_unit[m] = diag
            summary[m] = float(np.nanmean(list(diag.values())))
        else:
            ranks = {}
            by_cov = {}
            for u in scored:
                by_cov.setdefault(u[0], []).append(u)
            for cov, us in by_cov.items():
                n = len(us)
                if metric == "mmd":
                    X = {u: cells(aggr, "pred", u) for u in us}
                    Y = {u: cells(aggr, "ref", u) for u in us}
                    sx = {u: energy_distance_matrix(X[u], X[u]).mean() for u in us}
                    sy = {u: energy_distance_matrix(Y[u], Y[u]).mean() for u in us}
                    M = np.array([[mmd(X[q], Y[p], sx[q], sy[p]) for p in us] for q in us])
                else:
                    M = np.array([[vector_metric(P[q], R[p], metric) for p in us] for q in us])
                sim = metric in SIMILARITY
                for j, p in enumerate(us):
                    col = M[:, j]
                    own = col[j]
                    if np.isnan(own):
                        better = np.sum(~np.isnan(col))
                        ties = np.sum(np.isnan(col)) - 1
                    else:
                        better = np.sum(col > own) if sim else np.sum(col < own)
                        ties = np.sum(col == own) - 1
                    r = better + 0.5 * ties
                    denom = (n - 1) if rank == "v2" else n
                    ranks[p] = r / denom if denom > 0 else 0.0
            per_unit[m] = ranks
            summary[m] = float(np.nanmean(list(ranks.values())))
        if timings is not None:
            timings[m] = time.time() - t0
    return {
        "summary": summary,
        "per_unit": {m: {f"{u[0]}/{u[1]}": v for u, v in d.items()} for m, d in per_unit.items()},
        "only_in_pred": [f"{u[0]}/{u[1]}" for u in only_pred],
        "only_in_ref": [f"{u[0]}/{u[1]}" for u in only_ref],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pred", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--perturbation-col", default="condition")
    ap.add_argument("--covariate-col", action="append", default=None)
    ap.add_argument("--control", default="control")
    ap.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    ap.add_argument("--pca-components", type=int, default=30)
    ap.add_argument("--rank", default="v2", choices=["v1", "v2"])
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    t0 = time.time()
    pred, ref = ad.read_h5ad(a.pred), ad.read_h5ad(a.ref)
    timings = {"load": time.time() - t0}
    res = evaluate(pred, ref, a.perturbation_col, a.covariate_col or ["cell_type"],
                   a.control, a.metrics.split(","), a.pca_components, a.rank, timings)
    res["timings"] = timings
    res["seconds"] = time.time() - t0
    for k, v in res["summary"].items():
        print(f"{k:<24} {v:.7f}")
    print(f"total {res['seconds']:.1f} s", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
