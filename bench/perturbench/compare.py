"""primeflow evaluate against PerturBench's own `Evaluation` class (issue 9
part 3), on the same reference and prediction files, in one run.

PerturBench's public evaluation code (altoslabs/perturbench,
src/perturbench/analysis/benchmarks/) computes the per-unit metrics on
aggregated expression and the rank metrics from the pairwise matrices:
rmse on `average`, cosine on `logfc`, and their ranks (the v1 form, rank / n,
ties broken by a random shuffle). Those are the four metrics compared here;
MMD and DEG recall are not in that public code (metrics.md: its "v2" code),
so primeflow's own Python reference (bench/metrics) covers them.

PerturBench is run from its source (PERTURBENCH_SRC, a checkout's root; the
folder `src/perturbench/analysis` is all that is imported), never from this
repository: run.sh clones it when the variable is not set.

    python compare.py --ref REF.h5ad --pred PRED.h5ad --out RESULT.json
        [--pert-col condition] [--cov-col cell_type] [--control control]
        [--primeflow target/release/primeflow] [--threads N]

Timing: wall clock of each side in the same process tree, one after the
other (primeflow in memory, primeflow `--stream`, then PerturBench), reading
the files included on every side.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# (primeflow metric, PerturBench aggregation, PerturBench metric)
PAIRS = [
    ("rmse_average", "average", "rmse"),
    ("cosine_logfc", "logfc", "cosine"),
]


def run_primeflow(args, out_dir, stream=False):
    js = os.path.join(out_dir, "primeflow_stream.json" if stream else "primeflow.json")
    metrics = ",".join(m for m, _, _ in PAIRS) + "," + ",".join(
        m.replace("_", "_rank_", 1) for m, _, _ in PAIRS)
    cmd = [args.primeflow, "evaluate", "--pred", args.pred, "--ref", args.ref,
           "--perturbation-col", args.pert_col, "--covariate-col", args.cov_col,
           "--control", args.control, "--metrics", metrics, "--rank", "v1",
           "--precision", "f64", "--json", js, "--quiet"] + (["--stream"] if stream else [])
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with open(js) as f:
        res = json.load(f)
    units = {}
    for u in res["per_unit"]:
        units[f'{u["cov_key"]}_{u["perturbation"]}'] = u["values"]
    return wall, res["summary"], units


def run_perturbench(args):
    sys.path.insert(0, os.path.join(args.perturbench_src, "src"))
    import anndata as ad
    from perturbench.analysis.benchmarks.evaluation import Evaluation

    t0 = time.perf_counter()
    ref = ad.read_h5ad(args.ref)
    pred = ad.read_h5ad(args.pred)
    # A prediction is scored with the reference's control cells appended
    # (metrics.md, PerturBench's own workflow); primeflow does this itself.
    # Files whose predictions already carry controls keep them.
    ctrl = ref[ref.obs[args.pert_col].astype(str) == args.control]
    if not (pred.obs[args.pert_col].astype(str) == args.control).any():
        pred = ad.concat([pred, ctrl], join="outer", merge="first")
        pred.obs_names_make_unique()
    for a in (ref, pred):
        a.obs[args.pert_col] = a.obs[args.pert_col].astype("category")
        a.obs[args.cov_col] = a.obs[args.cov_col].astype("category")
    ev = Evaluation(model_adatas={"model": pred}, ref_adata=ref,
                    pert_col=args.pert_col, ctrl=args.control,
                    cov_cols=[args.cov_col])
    stages = {"read": time.perf_counter() - t0}
    summary, units = {}, {}
    for name, aggr, metric in PAIRS:
        s = time.perf_counter()
        ev.aggregate(aggr_method=aggr)
        stages[f"aggregate_{aggr}"] = time.perf_counter() - s
        s = time.perf_counter()
        df = ev.evaluate(aggr_method=aggr, metric=metric, return_df=True)
        stages[f"evaluate_{metric}"] = time.perf_counter() - s
        s = time.perf_counter()
        ev.evaluate_pairwise(aggr_method=aggr, metric=metric)
        ev.evaluate_rank(aggr_method=aggr, metric=metric)
        stages[f"pairwise_rank_{metric}"] = time.perf_counter() - s
        ranks = ev.get_rank_eval(aggr_method=aggr, metric=metric, melt=True)
        rank_name = name.replace("_", "_rank_", 1)
        summary[name] = float(df["metric"].astype(float).mean())
        summary[rank_name] = float(ranks["rank"].astype(float).mean())
        for k, v in zip(df["cov_pert"], df["metric"]):
            units.setdefault(str(k), {})[name] = float(v)
        for k, v in zip(ranks["cov_pert"], ranks["rank"]):
            units.setdefault(str(k), {})[rank_name] = float(v)
    wall = time.perf_counter() - t0
    return wall, stages, summary, units


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", required=True)
    ap.add_argument("--pred", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pert-col", default="condition")
    ap.add_argument("--cov-col", default="cell_type")
    ap.add_argument("--control", default="control")
    ap.add_argument("--primeflow", default="target/release/primeflow")
    ap.add_argument("--perturbench-src", default=os.environ.get("PERTURBENCH_SRC"))
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if not args.perturbench_src:
        sys.exit("compare.py: set PERTURBENCH_SRC or --perturbench-src (a checkout of altoslabs/perturbench)")

    with tempfile.TemporaryDirectory() as tmp:
        pf_wall, pf_summary, pf_units = run_primeflow(args, tmp)
        # `evaluate --stream`: X left in the files, each unit read when scored.
        st_wall, st_summary, st_units = run_primeflow(args, tmp, stream=True)
    stream_same = st_summary == pf_summary and st_units == pf_units
    pb_wall, pb_stages, pb_summary, pb_units = run_perturbench(args)

    # Agreement: per unit and per summary, on the units both score. Rank
    # values can differ where PerturBench's shuffle breaks an exact tie; the
    # count of such units is reported, not hidden.
    diffs = {}
    for m in pb_summary:
        worst, n, over = 0.0, 0, 0
        for k, vals in pb_units.items():
            if m not in vals or k not in pf_units or m not in pf_units[k]:
                continue
            d = abs(vals[m] - pf_units[k][m])
            if np.isnan(d):
                continue
            n += 1
            worst = max(worst, d)
            over += d > 1e-6
        diffs[m] = {"units": n, "max_abs_diff": worst, "units_over_1e-6": over,
                    "summary_primeflow": pf_summary.get(m),
                    "summary_perturbench": pb_summary[m]}
    result = {
        "ref": args.ref, "pred": args.pred,
        "primeflow_wall_s": pf_wall, "perturbench_wall_s": pb_wall,
        "ratio": pb_wall / pf_wall, "perturbench_stages_s": pb_stages,
        "primeflow_stream_wall_s": st_wall, "ratio_stream": pb_wall / st_wall,
        "stream_identical_to_in_memory": stream_same,
        "agreement": diffs,
        "units_primeflow": len(pf_units), "units_perturbench": len(pb_units),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
