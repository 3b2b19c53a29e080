"""Metrics benchmark (issue 4, section 4): `primeflow evaluate` against the
straightforward Python reference (reference.py: numpy/scipy/scanpy, loops
per unit and per pair as PerturBench writes them), on the same machine in the
same run.

1. Agreement: a small case (2 covariates, 12 perturbations, 300 genes) scored
   by both with all ten PerturBench metrics; prints the largest difference of
   every summary and per-unit value.
2. Srivatsan20 size (3 covariates x 190 perturbations, 1,000 predicted and
   300 reference cells per unit, 300 controls per covariate, 2,000 genes):
   times primeflow on all ten metrics (the MMD ranks bounded, the default)
   and reports how many unit pairs it computed. The loop reference is not
   run at this size (it had not finished nine metrics after 1,250 s; every
   pair of mmd_gex_rank is 1.3e14 flops).
3. mmd_gex_rank alone on one covariate of 20 perturbations (same cells per
   unit), timed for both, every per-unit rank compared.

    python bench/metrics/bench.py [--out bench/out/metrics] [--skip-full]
        [--device cpu]

Build first: cargo build --release. Results: OUT/results.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import anndata as ad

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import make_data  # noqa: E402
import reference  # noqa: E402

TEN = reference.DEFAULT_METRICS


def primeflow(pred, ref, metrics, out_json, device):
    exe = os.path.join(ROOT, "target", "release", "primeflow")
    cmd = [exe, "evaluate", "--pred", pred, "--ref", ref, "--metrics", ",".join(metrics),
           "--json", out_json, "--quiet", "--device", device]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"primeflow failed:\n{r.stdout}\n{r.stderr}")
    with open(out_json) as f:
        ev = json.load(f)
    return ev, wall


def python_ref(pred, ref, metrics):
    t0 = time.time()
    p, r = ad.read_h5ad(pred), ad.read_h5ad(ref)
    timings = {"load": time.time() - t0}
    res = reference.evaluate(p, r, metrics=metrics, timings=timings)
    return res, time.time() - t0, timings


def data(out, name, **kw):
    d = os.path.join(out, name)
    if not os.path.exists(os.path.join(d, "pred.h5ad")):
        make_data.main(["--out", d] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])
    return os.path.join(d, "pred.h5ad"), os.path.join(d, "ref.h5ad")


def agreement(out, device):
    pred, ref = data(out, "small", covs=2, perts=12, genes=300, ref_cells=60, pred_cells=100, controls=80)
    ev, _ = primeflow(pred, ref, TEN, os.path.join(out, "small_primeflow.json"), device)
    res, _, _ = python_ref(pred, ref, TEN)
    worst = {}
    for m in TEN:
        d = abs(ev["summary"][m] - res["summary"][m])
        for u in ev["per_unit"]:
            key = f"{u['cov_key']}/{u['perturbation']}"
            d = max(d, abs(u["values"][m] - res["per_unit"][m][key]))
        worst[m] = d
        print(f"  {m:<20} primeflow {ev['summary'][m]:.7f}  python {res['summary'][m]:.7f}  max |diff| {d:.2e}")
    return worst


def timed(out, name, metrics, device, **kw):
    pred, ref = data(out, name, **kw)
    ev, pf_wall = primeflow(pred, ref, metrics, os.path.join(out, f"{name}_primeflow.json"), device)
    print(f"  primeflow: {pf_wall:.1f} s wall (evaluation {ev['seconds']:.1f} s)", flush=True)
    res, py_wall, timings = python_ref(pred, ref, metrics)
    py_eval = py_wall - timings["load"]
    print(f"  python:    {py_wall:.1f} s wall (evaluation {py_eval:.1f} s)", flush=True)
    diff = max(abs(ev["summary"][m] - res["summary"][m]) for m in metrics)
    unit_diff = max(abs(u["values"][m] - res["per_unit"][m][f"{u['cov_key']}/{u['perturbation']}"])
                    for m in metrics for u in ev["per_unit"])
    print(f"  max per-unit |diff| {unit_diff:.2e}; pairs computed {ev.get('mmd_pairs_computed')}")
    print(f"  ratio {py_wall / pf_wall:.1f}x wall, {py_eval / ev['seconds']:.1f}x evaluation; "
          f"max summary |diff| {diff:.2e}")
    return {"primeflow_wall_s": pf_wall, "primeflow_eval_s": ev["seconds"], "python_wall_s": py_wall,
            "python_eval_s": py_eval, "python_timings": timings, "ratio_wall": py_wall / pf_wall,
            "ratio_eval": py_eval / ev["seconds"], "max_summary_diff": diff,
            "max_unit_diff": unit_diff, "mmd_pairs_computed": ev.get("mmd_pairs_computed"),
            "summary_primeflow": ev["summary"], "summary_python": res["summary"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "metrics"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-full", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    results = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}}
    print("1. agreement on a small case (all ten metrics)")
    results["agreement_max_abs_diff"] = agreement(a.out, a.device)
    print("3. mmd_gex_rank: 1 covariate x 20 perturbations, 1000/300 cells, 2000 genes")
    results["mmd_gex_rank_small"] = timed(a.out, "gexrank", ["mmd_gex_rank"], a.device, covs=1, perts=20)
    if not a.skip_full:
        print("2. Srivatsan20 size, all ten metrics, primeflow (the loop reference is not run)")
        pred, ref = data(a.out, "srivatsan20")
        ev, wall = primeflow(pred, ref, TEN, os.path.join(a.out, "srivatsan20_primeflow.json"), a.device)
        print(f"  primeflow: {wall:.1f} s wall; pairs computed {ev['mmd_pairs_computed']}", flush=True)
        results["srivatsan20_ten"] = {"primeflow_wall_s": wall, "primeflow_eval_s": ev["seconds"],
                                      "mmd_pairs_computed": ev["mmd_pairs_computed"],
                                      "summary": ev["summary"]}
    results["machine"]["loadavg_end"] = os.getloadavg()
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("wrote", os.path.join(a.out, "results.json"))


if __name__ == "__main__":
    main()
