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

/// Scores `pred` against `real` with cell-eval's metrics of `opts.profile`.
///
/// Both datasets: `[cells, G]` log1p expression with the same genes in the
/// same order, the perturbation column and control label of their
/// `columns`, and the same set of perturbation labels (cell-eval's
/// requirements, checked here with errors that name the file and value).
pub fn evaluate_cell_eval(
    pred: &Dataset,
    real: &Dataset,
    opts: &CellEvalOptions,
) -> Result<CellEvalReport> {
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
    check_log1p(real)?;
    let (real_groups, real_ctrl) = groups(real, "real")?;
    let (pred_groups, pred_ctrl) = groups(pred, "predicted")?;
    let perts: Vec<String> = real_groups.keys().cloned().collect();
    if let Some(p) = perts.iter().find(|p| !pred_groups.contains_key(*p)) {
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
    if perts.is_empty() {
        return Err(Error::invalid(
            format!(
                "obs column '{}' of {}",
                real.columns.perturbation,
                real.source_name()
            ),
            "has no perturbation besides the control",
        ));
    }
    let real_cells: Vec<Vec<usize>> = real_groups.into_values().collect();
    let pred_cells: Vec<Vec<usize>> = pred_groups.into_values().collect();

    // Pseudobulk metrics.
    let real_bulk: Vec<Vec<f32>> = real_cells.iter().map(|c| bulk(&real.x, c)).collect();
    let pred_bulk: Vec<Vec<f32>> = pred_cells.iter().map(|c| bulk(&pred.x, c)).collect();
    let real_ctrl_bulk = bulk(&real.x, &real_ctrl);
    let pred_ctrl_bulk = bulk(&pred.x, &pred_ctrl);
    let real_eff: Vec<Vec<f32>> = real_bulk
        .iter()
        .map(|b| effect(b, &real_ctrl_bulk))
        .collect();
    let pred_eff: Vec<Vec<f32>> = pred_bulk
        .iter()
        .map(|b| effect(b, &pred_ctrl_bulk))
        .collect();
    let gene_pos: BTreeMap<&str, usize> = real
        .genes
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let exclude: Vec<Option<usize>> = perts
        .iter()
        .map(|p| gene_pos.get(p.as_str()).copied())
        .collect();
    let zip_map = |f: &dyn Fn(&[f32], &[f32]) -> f64, a: &[Vec<f32>], b: &[Vec<f32>]| -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| f(x, y)).collect()
    };

    // Differential expression, real and predicted, each against its own
    // file's controls.
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    };
    let real_de: Vec<DeTable> = de_tables(&real.x, &real_cells, &real_ctrl, threads)?;
    let pred_de: Vec<DeTable> = de_tables(&pred.x, &pred_cells, &pred_ctrl, threads)?;
    let fdr = opts.fdr_threshold;
    let real_top: Vec<Vec<usize>> = real_de.iter().map(|t| t.top_genes(fdr)).collect();
    let pred_top: Vec<Vec<usize>> = pred_de.iter().map(|t| t.top_genes(fdr)).collect();
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
            "de_nsig_counts_real" => real_de
                .iter()
                .map(|t| t.n_significant(fdr) as f64)
                .collect(),
            "de_nsig_counts_pred" => pred_de
                .iter()
                .map(|t| t.n_significant(fdr) as f64)
                .collect(),
            "pearson_delta" => zip_map(&pearson, &pred_eff, &real_eff),
            "mse" => zip_map(&mean_squared_error, &pred_bulk, &real_bulk),
            "mae" => zip_map(&mean_abs_error, &pred_bulk, &real_bulk),
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
        control: real.columns.control.clone(),
        perturbations: perts,
        metrics,
    })
}
