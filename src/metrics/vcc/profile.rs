//! The cell-eval profiles (`vcc`, `minimal`) and [`evaluate_cell_eval`],
//! which scores a prediction file against a real file as
//! `cell-eval run --profile <p>` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::de::{de_tables, overlap, DeTable};
use super::discrimination::{
    bulk, discrimination_l1, effect, mean_abs_error, mean_squared_error, pearson,
};
use super::report::{CellEvalReport, MetricColumn};
use crate::data::Dataset;
use crate::error::{Error, Result};

/// The cell-eval version whose conventions are implemented.
pub const CELL_EVAL_VERSION: &str = "0.8.2";

/// A cell-eval metric profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellEvalProfile {
    /// `VCC_METRICS`: `overlap_at_N`, `mae`, `discrimination_score_l1`.
    #[default]
    Vcc,
    /// `MINIMAL_METRICS`: the vcc ones plus `precision_at_N`,
    /// `de_nsig_counts`, `pearson_delta`, `mse`.
    Minimal,
}

impl CellEvalProfile {
    /// The profile's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CellEvalProfile::Vcc => "vcc",
            CellEvalProfile::Minimal => "minimal",
        }
    }

    /// The metric columns in cell-eval's order (its DE metrics, then its
    /// anndata metrics, each in the profile's list order).
    pub fn columns(self) -> Vec<&'static str> {
        match self {
            CellEvalProfile::Vcc => vec!["overlap_at_N", "mae", "discrimination_score_l1"],
            CellEvalProfile::Minimal => vec![
                "overlap_at_N",
                "precision_at_N",
                "de_nsig_counts_real",
                "de_nsig_counts_pred",
                "pearson_delta",
                "mse",
                "mae",
                "discrimination_score_l1",
            ],
        }
    }
}

impl std::str::FromStr for CellEvalProfile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vcc" => Ok(CellEvalProfile::Vcc),
            "minimal" => Ok(CellEvalProfile::Minimal),
            other => Err(Error::unknown(
                "cell-eval profile",
                other,
                &["vcc", "minimal"],
            )),
        }
    }
}

/// Settings of [`evaluate_cell_eval`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellEvalOptions {
    pub profile: CellEvalProfile,
    /// FDR threshold of a significant gene (cell-eval: 0.05).
    pub fdr_threshold: f32,
    /// Worker threads of the differential expression (0: all cores).
    pub threads: usize,
}

impl Default for CellEvalOptions {
    fn default() -> Self {
        CellEvalOptions {
            profile: CellEvalProfile::Vcc,
            fdr_threshold: 0.05,
            threads: 0,
        }
    }
}

/// Row indices of the cells of each perturbation label (sorted labels,
/// cells in row order).
type Groups = BTreeMap<String, Vec<usize>>;

/// The cells of each perturbation label of `ds`, and the control's cells.
fn groups(ds: &Dataset, which: &str) -> Result<(Groups, Vec<usize>)> {
    let col = &ds.columns.perturbation;
    let labels = ds.obs.labels(&format!("obs of the {which} file"), col)?;
    let mut by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.into_iter().enumerate() {
        by.entry(l).or_default().push(i);
    }
    let control = by.remove(&ds.columns.control).ok_or_else(|| {
        Error::invalid(
            format!("obs column '{col}' of {}", ds.source_name()),
            format!("no cell has the control label '{}'", ds.columns.control),
        )
    })?;
    Ok((by, control))
}

/// cell-eval treats a matrix without fractional values as counts and
/// normalises it; this profile expects log1p data and says so instead.
fn check_log1p(ds: &Dataset) -> Result<()> {
    if !ds.x.all_stored(|v| v - v.floor() <= 1e-3) {
        return Ok(());
    }
    Err(Error::invalid(
        format!("X of {}", ds.source_name()),
        "has only integer values (counts?); the cell-eval profiles expect log1p-normalised \
         expression (cell-eval would normalize_total + log1p it first)",
    ))
}

impl CellEvalOptions {
    /// `threads`, or every core when 0.
    pub fn worker_threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.threads
        }
    }
}

/// Checks that `pred` can be scored against `real` (cell-eval's
/// requirements, with errors that name the file and value): the same genes
/// in the same order, control cells in both and the same set of
/// perturbation labels besides them. Reads only obs and genes, so either
/// may have X left in its file ([`Dataset::open_for_streaming`]).
pub fn check_cell_eval_pair(pred: &Dataset, real: &Dataset) -> Result<()> {
    if pred.genes != real.genes {
        let at = pred
            .genes
            .iter()
            .zip(&real.genes)
            .position(|(a, b)| a != b)
            .unwrap_or(pred.genes.len().min(real.genes.len()));
        return Err(Error::Mismatch(format!(
            "the genes of {} ({}) and {} ({}) differ (cell-eval needs the same genes in the same \
             order); first difference at position {at}: '{}' vs '{}'",
            pred.source_name(),
            pred.genes.len(),
            real.source_name(),
            real.genes.len(),
            pred.genes.get(at).map(String::as_str).unwrap_or("(none)"),
            real.genes.get(at).map(String::as_str).unwrap_or("(none)"),
        )));
    }
    let (real_groups, _) = groups(real, "real")?;
    let (pred_groups, _) = groups(pred, "predicted")?;
    if let Some(p) = real_groups.keys().find(|p| !pred_groups.contains_key(*p)) {
        return Err(Error::Mismatch(format!(
            "perturbation '{p}' of {} has no cells in {} (cell-eval needs the same perturbations)",
            real.source_name(),
            pred.source_name()
        )));
    }
    if let Some(p) = pred_groups.keys().find(|p| !real_groups.contains_key(*p)) {
        return Err(Error::Mismatch(format!(
            "perturbation '{p}' of {} has no cells in {} (cell-eval needs the same perturbations)",
            pred.source_name(),
            real.source_name()
        )));
    }
    if real_groups.is_empty() {
        return Err(Error::invalid(
            format!(
                "obs column '{}' of {}",
                real.columns.perturbation,
                real.source_name()
            ),
            "has no perturbation besides the control",
        ));
    }
    Ok(())
}

/// One file's share of the cell-eval metrics, everything its X is needed
/// for: per perturbation (labels sorted) the pseudobulk `[G]` and the DE
/// table against the file's own controls, and the controls' pseudobulk.
/// Small next to X, so a caller can drop X (or reuse its memory for the
/// other file) before computing the other side.
#[derive(Debug, Clone)]
pub struct CellEvalSide {
    perts: Vec<String>,
    bulk: Vec<Vec<f32>>,
    ctrl_bulk: Vec<f32>,
    de: Vec<DeTable>,
}

impl CellEvalSide {
    /// The summary of `ds`; `real`: the observed file (its X must be
    /// log1p, not counts) rather than the prediction. `threads` workers
    /// run the differential expression.
    pub fn of(ds: &Dataset, real: bool, threads: usize) -> Result<CellEvalSide> {
        if real {
            check_log1p(ds)?;
        }
        let (by, ctrl) = groups(ds, if real { "real" } else { "predicted" })?;
        let perts: Vec<String> = by.keys().cloned().collect();
        let cells: Vec<Vec<usize>> = by.into_values().collect();
        let ctrl_bulk = bulk(&ds.x, &ctrl);
        let bulks = cells.iter().map(|c| bulk(&ds.x, c)).collect();
        let de = de_tables(&ds.x, &cells, &ctrl, threads)?;
        Ok(CellEvalSide {
            perts,
            bulk: bulks,
            ctrl_bulk,
            de,
        })
    }
}

/// Scores `pred` against `real` with cell-eval's metrics of `opts.profile`.
///
/// Both datasets: `[cells, G]` log1p expression with the same genes in the
/// same order, the perturbation column and control label of their
/// `columns`, and the same set of perturbation labels (cell-eval's
/// requirements, [`check_cell_eval_pair`]).
pub fn evaluate_cell_eval(
    pred: &Dataset,
    real: &Dataset,
    opts: &CellEvalOptions,
) -> Result<CellEvalReport> {
    check_cell_eval_pair(pred, real)?;
    let threads = opts.worker_threads();
    let real_side = CellEvalSide::of(real, true, threads)?;
    let pred_side = CellEvalSide::of(pred, false, threads)?;
    score_cell_eval(
        &pred_side,
        &real_side,
        &real.genes,
        &real.columns.control,
        opts,
    )
}

/// The report of `opts.profile` from the two sides of a pair that passed
/// [`check_cell_eval_pair`]; `genes` `[G]` (the pair's), `control` the
/// control label (reported).
pub fn score_cell_eval(
    pred: &CellEvalSide,
    real: &CellEvalSide,
    genes: &[String],
    control: &str,
    opts: &CellEvalOptions,
) -> Result<CellEvalReport> {
    if pred.perts != real.perts {
        return Err(Error::Mismatch(format!(
            "the predicted and real files have different perturbations ({} and {})",
            pred.perts.len(),
            real.perts.len()
        )));
    }
    let real_eff: Vec<Vec<f32>> = real
        .bulk
        .iter()
        .map(|b| effect(b, &real.ctrl_bulk))
        .collect();
    let pred_eff: Vec<Vec<f32>> = pred
        .bulk
        .iter()
        .map(|b| effect(b, &pred.ctrl_bulk))
        .collect();
    let gene_pos: BTreeMap<&str, usize> = genes
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let exclude: Vec<Option<usize>> = real
        .perts
        .iter()
        .map(|p| gene_pos.get(p.as_str()).copied())
        .collect();
    let zip_map = |f: &dyn Fn(&[f32], &[f32]) -> f64, a: &[Vec<f32>], b: &[Vec<f32>]| -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| f(x, y)).collect()
    };
    let fdr = opts.fdr_threshold;
    let real_top: Vec<Vec<usize>> = real.de.iter().map(|t| t.top_genes(fdr)).collect();
    let pred_top: Vec<Vec<usize>> = pred.de.iter().map(|t| t.top_genes(fdr)).collect();
    let overlaps = |precision: bool| -> Vec<f64> {
        real_top
            .iter()
            .zip(&pred_top)
            .map(|(r, p)| overlap(r, p, None, precision))
            .collect()
    };

    let mut metrics = Vec::new();
    for name in opts.profile.columns() {
        let values = match name {
            "overlap_at_N" => overlaps(false),
            "precision_at_N" => overlaps(true),
            "de_nsig_counts_real" => real
                .de
                .iter()
                .map(|t| t.n_significant(fdr) as f64)
                .collect(),
            "de_nsig_counts_pred" => pred
                .de
                .iter()
                .map(|t| t.n_significant(fdr) as f64)
                .collect(),
            "pearson_delta" => zip_map(&pearson, &pred_eff, &real_eff),
            "mse" => zip_map(&mean_squared_error, &pred.bulk, &real.bulk),
            "mae" => zip_map(&mean_abs_error, &pred.bulk, &real.bulk),
            "discrimination_score_l1" => discrimination_l1(&real_eff, &pred_eff, &exclude),
            other => {
                return Err(Error::unknown(
                    "cell-eval metric",
                    other,
                    &opts.profile.columns(),
                ))
            }
        };
        metrics.push(MetricColumn::new(name, values));
    }
    Ok(CellEvalReport {
        profile: opts.profile.as_str().to_string(),
        cell_eval_version: CELL_EVAL_VERSION.to_string(),
        control: control.to_string(),
        perturbations: real.perts.clone(),
        metrics,
    })
}
