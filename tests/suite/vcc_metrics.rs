//! `primeflow evaluate --profile vcc|minimal` against cell-eval 0.8.2 itself
//! (issue 12, part 2): the same two simulated .h5ad files scored by both, as
//! separate processes, every reported value (per perturbation and every row
//! of cell-eval's agg_results) equal to 1e-6.

use std::collections::HashMap;
use std::path::Path;

use primeflow::anndata::{
    write_h5ad, AnnData, Categorical, Column, DataFrame, WriteOptions, XFormat,
};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};

use crate::common;

const GENES: usize = 240;
const PERTS: usize = 14;

/// A VCC-shaped file: obs `target_gene` (control `non-targeting`), genes
/// `G0..`, perturbations named after genes `G3, G10, ...` (so the
/// discrimination score leaves a column out), X = ln(1 + 0.7 c) with c
/// Poisson counts (many zeros and ties, never integer). A perturbation
/// scales the rate of 12 genes by `scale[p]`; `noise` moves every rate.
/// X is written as `format` (pdex has a dense and a sparse path).
fn write_vcc(
    path: &Path,
    format: XFormat,
    seed: u64,
    cells: usize,
    controls: usize,
    effect: f64,
    noise: f64,
) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let base: Vec<f64> = {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        (0..GENES)
            .map(|_| 0.05 + 3.0 * r.gen::<f64>().powi(2))
            .collect()
    };
    let mut labels: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for p in 0..=PERTS {
        let (label, n) = if p == PERTS {
            ("non-targeting".to_string(), controls)
        } else {
            (format!("G{}", 3 + 7 * p), cells)
        };
        let mut rate = base.clone();
        if p < PERTS {
            for k in 0..12 {
                let g = (p * 17 + k * 5) % GENES;
                rate[g] *= if k % 2 == 0 {
                    1.0 + effect
                } else {
                    1.0 / (1.0 + effect)
                };
            }
            // The target gene is knocked down.
            rate[3 + 7 * p] *= 0.2;
        }
        for r in rate.iter_mut() {
            *r *= (noise * (rng.gen::<f64>() - 0.5)).exp();
        }
        for _ in 0..n {
            let row = rate
                .iter()
                .map(|&m| {
                    let c = Poisson::new(m).map(|d| d.sample(&mut rng)).unwrap_or(0.0);
                    (1.0 + 0.7 * c).ln() as f32
                })
                .collect();
            rows.push(row);
            labels.push(label.clone());
        }
    }
    let mut x = ndarray::Array2::<f32>::zeros((rows.len(), GENES));
    for (i, r) in rows.iter().enumerate() {
        for (j, &v) in r.iter().enumerate() {
            x[[i, j]] = v;
        }
    }
    let mut obs = DataFrame::with_index((0..rows.len()).map(|i| format!("c{i}")).collect());
    obs.insert(
        "target_gene",
        Column::Categorical(Categorical::from_labels(&labels, true)),
    )
    .unwrap();
    let ad = AnnData {
        x: x.into(),
        obs,
        var: DataFrame::with_index((0..GENES).map(|j| format!("G{j}")).collect()),
        ..Default::default()
    };
    let opts = WriteOptions {
        x_format: format,
        ..Default::default()
    };
    write_h5ad(path, &ad, &opts).unwrap();
}

/// A CSV with a header and a first text column: header, and rows as
/// (first field, numbers).
fn read_csv(path: &Path) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(',');
            let key = f.next().unwrap().to_string();
            let vals = f
                .map(|v| {
                    if v.is_empty() {
                        f64::NAN
                    } else {
                        v.parse().unwrap()
                    }
                })
                .collect();
            (key, vals)
        })
        .collect();
    (header, rows)
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6
}

/// Compares primeflow's JSON report with cell-eval's results.csv and
/// agg_results.csv; returns the number of values compared.
fn compare(json: &Path, results: &Path, agg: &Path) -> usize {
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let perts: Vec<String> = report["perturbations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ours: HashMap<String, (Vec<f64>, Vec<f64>)> = report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let nums = |k: &str| -> Vec<f64> {
                m[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap_or(f64::NAN))
                    .collect()
            };
            (
                m["name"].as_str().unwrap().to_string(),
                (nums("values"), nums("summary")),
            )
        })
        .collect();
    let (header, rows) = read_csv(results);
    let theirs: Vec<&str> = header[1..].iter().map(String::as_str).collect();
    let mut names: Vec<&str> = ours.keys().map(String::as_str).collect();
    names.sort();
    let mut want = theirs.clone();
    want.sort();
    assert_eq!(names, want, "the same metrics as cell-eval reports");
    assert_eq!(rows.len(), perts.len(), "one row per perturbation");
    let mut n = 0;
    for (pert, vals) in &rows {
        let i = perts.iter().position(|p| p == pert).unwrap();
        for (name, v) in theirs.iter().zip(vals) {
            let o = ours[*name].0[i];
            assert!(
                close(o, *v),
                "{name} of {pert}: primeflow {o}, cell-eval {v}"
            );
            n += 1;
        }
    }
    let (header, rows) = read_csv(agg);
    for (stat_i, (stat, vals)) in rows.iter().enumerate() {
        for (name, v) in header[1..].iter().zip(vals) {
            let o = ours[name.as_str()].1[stat_i];
            assert!(
                close(o, *v),
                "{stat} of {name}: primeflow {o}, cell-eval {v}"
            );
            n += 1;
        }
    }
    n
}

#[test]
fn vcc_profile_agrees_with_cell_eval() {
    let dir = common::tmpdir("vcc_metrics");
    let real = dir.join("real.h5ad");
    let pred = dir.join("pred.h5ad");
    write_vcc(&real, XFormat::Dense, 1, 40, 120, 1.5, 0.1);
    // A prediction: weaker effects, other noise, its own control cells.
    write_vcc(&pred, XFormat::Csr, 2, 30, 90, 0.8, 0.6);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    for profile in ["vcc", "minimal"] {
        let json = dir.join(format!("{profile}.json"));
        let (code, out, err) = common::primeflow(&[
            "evaluate",
            "--profile",
            profile,
            "--ref",
            &s(&real),
            "--pred",
            &s(&pred),
            "--json",
            &s(&json),
            "--threads",
            "2",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("overlap_at_N") && out.contains("discrimination_score_l1"),
            "{out}"
        );
        common::assert_exists(&json);
    }

    // The same from a script: Metrics(#{profile: "vcc"}).evaluate.
    let script = dir.join("vcc.rhai");
    std::fs::write(
        &script,
        format!(
            r#"let o = #{{perturbation: "target_gene", covariates: [], control: "non-targeting", allow_negative: true}};
let t = Metrics(#{{profile: "vcc", threads: 1}}).evaluate(Dataset::load("{pred}", o), Dataset::load("{real}", o));
print(t.metrics);
print(`mae=${{t.get("mae")}}`);
print(`n=${{t.per_perturbation().len()}}`);
"#,
            pred = s(&pred),
            real = s(&real)
        ),
    )
    .unwrap();
    let (code, out, err) = common::primeflow(&["run", &s(&script)]);
    assert_eq!(code, 0, "{err}");
    let cli: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("vcc.json")).unwrap()).unwrap();
    let cli_mae = cli["metrics"][1]["summary"][2].as_f64().unwrap();
    assert_eq!(cli["metrics"][1]["name"], "mae");
    assert!(
        out.contains(r#"["overlap_at_N", "mae", "discrimination_score_l1"]"#),
        "{out}"
    );
    assert!(
        out.contains(&format!("mae={cli_mae}")),
        "{out} vs {cli_mae}"
    );
    assert!(out.contains(&format!("n={PERTS}")), "{out}");

    if !common::python_has("cell_eval") {
        println!("skipped: cell-eval is not installed in .venv (./setup.sh --python installs it)");
        return;
    }
    // cell-eval in its own process, both profiles from one evaluator (its DE
    // is computed once).
    let code = format!(
        r#"
import logging, warnings
warnings.filterwarnings("ignore")
from cell_eval import MetricsEvaluator
ev = MetricsEvaluator(adata_pred="{pred}", adata_real="{real}", control_pert="non-targeting",
                      pert_col="target_gene", num_threads=1, outdir="{out}")
for profile in ["vcc", "minimal"]:
    ev.compute(profile=profile, basename=f"{{profile}}_results.csv", break_on_error=True)
print("ok")
"#,
        pred = s(&pred),
        real = s(&real),
        out = s(&dir.join("cell-eval")),
    );
    assert!(common::run_python(&code).contains("ok"));
    let mut compared = 0;
    for profile in ["vcc", "minimal"] {
        let ce = dir.join("cell-eval");
        compared += compare(
            &dir.join(format!("{profile}.json")),
            &ce.join(format!("{profile}_results.csv")),
            &ce.join(format!("agg_{profile}_results.csv")),
        );
    }
    println!("{compared} values agree with cell-eval 0.8.2 to 1e-6");
    // The fixture exercises the metrics: some DE genes found, and the scores
    // are neither trivially perfect nor zero.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("minimal.json")).unwrap()).unwrap();
    let mean = |name: &str| -> f64 {
        report["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()["summary"][2]
            .as_f64()
            .unwrap()
    };
    assert!(mean("de_nsig_counts_real") >= 5.0);
    assert!(mean("overlap_at_N") > 0.05 && mean("overlap_at_N") < 1.0);
}

#[test]
fn vcc_profile_errors_name_the_problem() {
    let dir = common::tmpdir("vcc_metrics_errors");
    let real = dir.join("real.h5ad");
    write_vcc(&real, XFormat::Csr, 1, 5, 8, 1.0, 0.1);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (code, _, err) = common::primeflow(&[
        "evaluate",
        "--profile",
        "vcc",
        "--ref",
        &s(&real),
        "--pred",
        &s(&real),
        "--control",
        "ctrl",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'ctrl'") && err.contains("target_gene"),
        "{err}"
    );
    let (code, _, err) = common::primeflow(&[
        "evaluate",
        "--profile",
        "vcx",
        "--ref",
        &s(&real),
        "--pred",
        &s(&real),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("vcx") && err.contains("vcc"), "{err}");
}
