//! Tests: bounded MMD ranks (`mmd_pairs = bounded`, the default) give the
//! ranks of the whole pairwise matrix (`all`) while computing fewer pairs,
//! keep exact ties, and report only the pairs they computed.

use primeflow::anndata::{AnnData, Categorical, Column, DataFrame};
use primeflow::data::{Dataset, ObsColumns};
use primeflow::metrics::{Evaluation, Metrics, MetricsConfig, MmdPairs};

use crate::common;
use crate::metrics::devel;

const RANKS: [&str; 4] = ["mmd_gex", "mmd_gex_rank", "mmd_pca", "mmd_pca_rank"];

fn evaluate(pred: &Dataset, reference: &Dataset, pairs: MmdPairs) -> Evaluation {
    let cfg = MetricsConfig {
        metrics: RANKS.iter().map(|s| s.to_string()).collect(),
        mmd_pairs: pairs,
        ..Default::default()
    };
    Metrics::new(cfg)
        .unwrap()
        .evaluate(pred, reference)
        .unwrap()
}

/// A prediction of `reference`'s units built from its own cells: unit `i`
/// of a cell type gets the cells of unit `pick(i, m)` (`m` units), every
/// unit keeping its own cell count where possible.
fn rebuilt(reference: &Dataset, pick: impl Fn(usize, usize) -> usize) -> Dataset {
    let g = reference.n_genes();
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let (mut cond, mut ct): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for cov in reference.cov_keys() {
        let mut units: Vec<_> = reference
            .units()
            .iter()
            .filter(|u| u.cov_key == cov && !u.is_control())
            .collect();
        units.sort_by(|a, b| a.label.cmp(&b.label));
        let m = units.len();
        for (i, u) in units.iter().enumerate() {
            let src = pick(i, m);
            let cells: Vec<usize> = if src == usize::MAX {
                reference.control_cells(&cov)
            } else {
                units[src].cells.clone()
            };
            for c in cells {
                rows.push(reference.x.row_vec(c));
                cond.push(u.label.clone());
                ct.push(cov.clone());
            }
        }
    }
    let mut x = ndarray::Array2::<f32>::zeros((rows.len(), g));
    for (i, r) in rows.iter().enumerate() {
        for (j, &v) in r.iter().enumerate() {
            x[[i, j]] = v;
        }
    }
    let mut obs = DataFrame::with_index((0..rows.len()).map(|i| format!("p{i}")).collect());
    obs.insert(
        "condition",
        Column::Categorical(Categorical::from_labels(&cond, true)),
    )
    .unwrap();
    obs.insert(
        "cell_type",
        Column::Categorical(Categorical::from_labels(&ct, true)),
    )
    .unwrap();
    let ad = AnnData {
        x: x.into(),
        obs,
        var: reference.to_anndata().var,
        ..Default::default()
    };
    Dataset::from_anndata(ad, ObsColumns::default(), None, false).unwrap()
}

/// Bounded and all give the same per-unit values (ranks exactly, MMD to
/// rounding); returns the bounded evaluation.
fn same_ranks(pred: &Dataset, reference: &Dataset, what: &str) -> Evaluation {
    let all = evaluate(pred, reference, MmdPairs::All);
    let bounded = evaluate(pred, reference, MmdPairs::Bounded);
    assert_eq!(all.per_unit.len(), bounded.per_unit.len());
    for (a, b) in all.per_unit.iter().zip(&bounded.per_unit) {
        for name in RANKS {
            let (x, y) = (a.values[name], b.values[name]);
            if name.ends_with("_rank") {
                assert_eq!(x, y, "{what}: {name} of {} {}", a.cov_key, a.perturbation);
            } else {
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "{what}: {name} {x} vs {y}"
                );
            }
        }
    }
    // Every value the bounded matrix reports is the full matrix's value.
    for (cov, mats) in &bounded.pairwise {
        for (name, m) in mats {
            let full = &all.pairwise[cov][name];
            for (r, (row_b, row_a)) in m.values.iter().zip(&full.values).enumerate() {
                for (c, (&vb, &va)) in row_b.iter().zip(row_a).enumerate() {
                    if !vb.is_nan() {
                        assert!(
                            (vb - va).abs() <= 1e-9 * va.abs().max(1.0),
                            "{what}: {name} [{r}, {c}] {vb} vs {va}"
                        );
                    }
                }
            }
        }
    }
    let [computed, total] = all.mmd_pairs_computed["mmd_gex_rank"];
    assert_eq!(computed, total, "{what}: `all` computes every pair");
    bounded
}

#[test]
fn bounded_mmd_ranks_equal_the_full_matrix_ranks() {
    let Some(ds) = devel() else { return };
    // Itself, a shifted assignment (each unit predicted by the next one's
    // cells) and a half-way mix: near and far pairs of every kind.
    let itself = same_ranks(&ds, &ds, "itself");
    for name in ["mmd_gex_rank", "mmd_pca_rank"] {
        assert_eq!(
            itself.get(name),
            Some(0.0),
            "{name} of the reference itself"
        );
    }
    let next = same_ranks(&rebuilt(&ds, |i, m| (i + 1) % m), &ds, "next");
    // The bounds decide part of the gene-space pairs even here (500 genes,
    // many weak perturbations; on 2,000 genes with distinct units they
    // decide nearly all, docs/results/metrics_benchmark.md).
    for ev in [&itself, &next] {
        let [computed, total] = ev.mmd_pairs_computed["mmd_gex_rank"];
        println!("gene space: {computed} of {total} pairs computed");
        assert!(
            total > 0 && computed < total,
            "gene space: {computed} of {total} computed"
        );
        // A pair the bounds decided has no value in the reported matrix.
        let nulls: usize = ev
            .pairwise
            .values()
            .flat_map(|m| m["mmd_gex_rank"].values.iter().flatten())
            .filter(|v| v.is_nan())
            .count();
        assert_eq!(nulls, total - computed);
    }
}

#[test]
fn bounded_mmd_ranks_keep_exact_ties() {
    // Every unit of a cell type predicted by the same cells (the control
    // cells): all rows of a column tie, each unit ranks in the middle
    // (half the other units), as with the full matrix.
    let Some(ds) = devel() else { return };
    let pred = rebuilt(&ds, |_, _| usize::MAX);
    let ev = same_ranks(&pred, &ds, "control baseline");
    for u in &ev.per_unit {
        for name in ["mmd_gex_rank", "mmd_pca_rank"] {
            assert_eq!(
                u.values[name], 0.5,
                "{name} of {} {}",
                u.cov_key, u.perturbation
            );
        }
    }
}

#[test]
fn evaluate_cli_takes_mmd_pairs() {
    let Some(_) = devel() else { return };
    let dir = common::tmpdir("mmd_pairs_cli");
    let devel = common::devel();
    let d = devel.to_str().unwrap();
    let json = |name: &str| dir.join(name).to_str().unwrap().to_string();
    for mode in ["bounded", "all"] {
        common::run_ok(&[
            "evaluate",
            "--pred",
            d,
            "--ref",
            d,
            "--metrics",
            "mmd_gex_rank",
            "--mmd-pairs",
            mode,
            "--quiet",
            "--json",
            &json(&format!("{mode}.json")),
        ]);
    }
    let b = common::read_json(&dir.join("bounded.json"));
    let a = common::read_json(&dir.join("all.json"));
    assert_eq!(b["summary"], a["summary"]);
    assert_eq!(b["config"]["mmd_pairs"], "bounded");
    assert_eq!(a["config"]["mmd_pairs"], "all");
    let (c, t) = (
        &b["mmd_pairs_computed"]["mmd_gex_rank"][0],
        &b["mmd_pairs_computed"]["mmd_gex_rank"][1],
    );
    assert!(c.as_u64().unwrap() < t.as_u64().unwrap());
    let (code, _, err) = common::primeflow(&[
        "evaluate",
        "--pred",
        d,
        "--ref",
        d,
        "--metrics",
        "mmd_gex_rank",
        "--mmd-pairs",
        "some",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("mmd_pairs") && err.contains("some") && err.contains("bounded"),
        "{err}"
    );
}
