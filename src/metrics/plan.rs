//! Which cells are compared (metrics.md, "Which cells"): the units scored,
//! their cells in the prediction and the reference, the controls of each
//! covariate key, and how the prediction's genes map onto the reference's.
//!
//! * Units are (covariate key, perturbation label) pairs; a unit is scored
//!   when it has cells in both files and is not a control. Units found in
//!   only one file are listed (`only_in_pred`, `only_in_ref`), not scored.
//! * Controls always come from the reference: PerturBench appends the
//!   reference's control cells to the prediction, so control cells the
//!   prediction itself carries are dropped (and counted) and the prediction's
//!   t-scores and logfc use the reference's controls.
//! * Genes: the reference's genes, in its order; the prediction must contain
//!   all of them (any order; extra genes are ignored, as PerturBench subsets
//!   the prediction to the reference's features).
//! * The control label must occur in the reference's perturbation column
//!   (or be one of the built-in aliases `control`, `ctrl`); an unknown label
//!   is an error listing the labels found.

use std::collections::BTreeMap;

use crate::data::condition::CONTROL_ALIASES;
use crate::data::Dataset;
use crate::error::{Error, Result};

/// One scored unit.
#[derive(Debug, Clone)]
pub struct PlannedUnit {
    /// Perturbation label.
    pub label: String,
    /// Rows of the prediction.
    pub pred_cells: Vec<usize>,
    /// Rows of the reference.
    pub ref_cells: Vec<usize>,
}

/// The scored units of one covariate key, sorted by label.
#[derive(Debug, Clone)]
pub struct CovPlan {
    pub cov_key: String,
    pub units: Vec<PlannedUnit>,
    /// Reference control rows of this covariate key.
    pub controls: Vec<usize>,
}

/// Everything [`super::Metrics::evaluate`] compares.
#[derive(Debug, Clone)]
pub struct Plan {
    pub covs: Vec<CovPlan>,
    /// For each reference gene, the prediction's column; `None` when the
    /// prediction's genes are the reference's, in order.
    pub gene_map: Option<Vec<usize>>,
    /// `cov_key/label` of units only the prediction has.
    pub only_in_pred: Vec<String>,
    /// `cov_key/label` of units only the reference has.
    pub only_in_ref: Vec<String>,
    /// Control cells of the prediction that were dropped.
    pub dropped_pred_controls: usize,
}

impl Plan {
    /// Matches `pred` against `reference`.
    pub fn new(pred: &Dataset, reference: &Dataset) -> Result<Plan> {
        if pred.columns.perturbation != reference.columns.perturbation
            || pred.columns.covariates != reference.columns.covariates
        {
            return Err(Error::Mismatch(format!(
                "the prediction ({}) uses perturbation column '{}' and covariates [{}] but the reference ({}) '{}' and [{}]",
                pred.source_name(),
                pred.columns.perturbation,
                pred.columns.covariates.join(", "),
                reference.source_name(),
                reference.columns.perturbation,
                reference.columns.covariates.join(", ")
            )));
        }
        check_control_label(reference)?;
        let gene_map = gene_map(pred, reference)?;
        let mut pred_units: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        let mut dropped = 0usize;
        for u in pred.units() {
            if u.is_control() {
                dropped += u.cells.len();
            } else {
                pred_units
                    .entry((u.cov_key.clone(), u.label.clone()))
                    .or_default()
                    .extend(u.cells.iter().copied());
            }
        }
        let mut ref_units: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for u in reference.units().iter().filter(|u| !u.is_control()) {
            ref_units
                .entry((u.cov_key.clone(), u.label.clone()))
                .or_default()
                .extend(u.cells.iter().copied());
        }
        let name = |k: &(String, String)| format!("{}/{}", k.0, k.1);
        let only_in_pred = pred_units
            .keys()
            .filter(|k| !ref_units.contains_key(*k))
            .map(name)
            .collect();
        let only_in_ref = ref_units
            .keys()
            .filter(|k| !pred_units.contains_key(*k))
            .map(name)
            .collect();
        let mut covs: Vec<CovPlan> = Vec::new();
        for (key, ref_cells) in &ref_units {
            let Some(pred_cells) = pred_units.get(key) else {
                continue;
            };
            if covs.last().map(|c| c.cov_key != key.0).unwrap_or(true) {
                covs.push(CovPlan {
                    cov_key: key.0.clone(),
                    units: Vec::new(),
                    controls: reference.control_cells(&key.0),
                });
            }
            if let Some(c) = covs.last_mut() {
                c.units.push(PlannedUnit {
                    label: key.1.clone(),
                    pred_cells: pred_cells.clone(),
                    ref_cells: ref_cells.clone(),
                });
            }
        }
        Ok(Plan {
            covs,
            gene_map,
            only_in_pred,
            only_in_ref,
            dropped_pred_controls: dropped,
        })
    }

    /// Number of scored units.
    pub fn n_units(&self) -> usize {
        self.covs.iter().map(|c| c.units.len()).sum()
    }
}

/// A control label that the reference never uses is a typo, not a file
/// without controls: it would silently turn the real controls into a scored
/// "perturbation". The built-in aliases (`control`, `ctrl`) are always
/// accepted, so the default works on files without controls.
fn check_control_label(reference: &Dataset) -> Result<()> {
    let control = reference.columns.control.as_str();
    if CONTROL_ALIASES.contains(&control) || reference.units().iter().any(|u| u.label == control) {
        return Ok(());
    }
    let mut labels: Vec<&str> = reference.units().iter().map(|u| u.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    Err(Error::unknown(
        format!(
            "control label (obs column '{}' of {})",
            reference.columns.perturbation,
            reference.source_name()
        ),
        control,
        &labels,
    ))
}

/// The prediction's column of every reference gene (`None`: identical).
fn gene_map(pred: &Dataset, reference: &Dataset) -> Result<Option<Vec<usize>>> {
    if pred.genes == reference.genes {
        return Ok(None);
    }
    pred.gene_columns(&reference.genes, "the reference", "the prediction")
        .map(Some)
}
