//! Tests: metrics (issue 4). Golden numbers on devel.h5ad from metrics.md,
//! hand-worked tiny cases for each metric and aggregation, the CLI.

use std::collections::BTreeMap;

use primeflow::anndata::{AnnData, Categorical, Column, DataFrame};
use primeflow::data::{Dataset, LoadOptions, ObsColumns};
use primeflow::metrics::{compare, Evaluation, Metrics, MetricsConfig, Precision, RankConvention};

use crate::common;

// ---------------------------------------------------------------- helpers

/// devel.h5ad with condition / [cell_type] / control (None when absent).
fn devel() -> Option<Dataset> {
    let path = common::devel();
    if !path.exists() {
        println!("skipped: {} not found", path.display());
        return None;
    }
    Some(Dataset::load(&path, &LoadOptions::default()).unwrap())
}

/// `ds` with obs column `col` replaced by `labels`.
fn relabel(ds: &Dataset, col: &str, labels: &[String]) -> Dataset {
    let mut ad = ds.to_anndata();
    ad.obs
        .insert(
            col,
            Column::Categorical(Categorical::from_labels(labels, true)),
        )
        .unwrap();
    Dataset::from_anndata(ad, ds.columns.clone(), None, false).unwrap()
}

/// metrics.md's "cyclic" prediction: per cell type, non-control
/// perturbations sorted by name (byte order); p_i is predicted by the true
/// cells of p_(i+1 mod m).
fn cyclic(ds: &Dataset) -> Dataset {
    let mut labels: Vec<String> = (0..ds.n_cells())
        .map(|i| ds.unit_of(i).label.clone())
        .collect();
    for cov in ds.cov_keys() {
        let mut perts: Vec<&str> = ds
            .units()
            .iter()
            .filter(|u| u.cov_key == cov && !u.is_control())
            .map(|u| u.label.as_str())
            .collect();
        perts.sort();
        let m = perts.len();
        for (i, p) in perts.iter().enumerate() {
            let next = perts[(i + 1) % m];
            let unit = ds
                .units()
                .iter()
                .find(|u| u.cov_key == cov && u.label == next)
                .unwrap();
            for &c in &unit.cells {
                labels[c] = p.to_string();
            }
        }
    }
    relabel(ds, "condition", &labels)
}

/// metrics.md's "half" prediction: every non-control cell x of cell type c
/// becomes 0.5 x + 0.5 mean(control cells of c).
fn half(ds: &Dataset) -> Dataset {
    let mut out = ds.clone();
    for cov in ds.cov_keys() {
        let ctrl = ds.control_cells(&cov);
        let mut mu = vec![0f64; ds.n_genes()];
        for &c in &ctrl {
            for (m, &v) in mu.iter_mut().zip(ds.x.row(c)) {
                *m += v as f64 / ctrl.len() as f64;
            }
        }
        for u in ds
            .units()
            .iter()
            .filter(|u| u.cov_key == cov && !u.is_control())
        {
            for &c in &u.cells {
                for (j, m) in mu.iter().enumerate() {
                    out.x[[c, j]] = (0.5 * ds.x[[c, j]] as f64 + 0.5 * m) as f32;
                }
            }
        }
    }
    out
}

fn config(metrics: &[&str], rank: RankConvention) -> MetricsConfig {
    MetricsConfig {
        metrics: metrics.iter().map(|s| s.to_string()).collect(),
        rank,
        ..Default::default()
    }
}

const ALL10: [&str; 10] = primeflow::metrics::DEFAULT_METRICS;

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.9}, want {want:.9} (tolerance {tol:e})"
    );
}

#[test]
fn devel_print_all() {
    let Some(ds) = devel() else { return };
    for (name, pred) in [
        ("identity", ds.clone()),
        ("cyclic", cyclic(&ds)),
        ("half", half(&ds)),
    ] {
        let ev = Metrics::new(config(&ALL10, RankConvention::V2))
            .unwrap()
            .evaluate(&pred, &ds)
            .unwrap();
        println!("== {name}\n{ev}");
    }
}
