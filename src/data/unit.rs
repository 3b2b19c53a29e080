//! `Unit`: a (covariate key, perturbation label) group of cells
//! (metrics.md), and the grouping of a dataset's cells into units. The
//! covariate key joins a cell's covariate values with `_`. Control units
//! hold the control cells of their covariate key.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::data::condition::{parse_perturbations, Condition};

/// A (covariate key, perturbation) group of cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    /// The perturbation label as written in the data (`KLF1+MAP2K6`).
    pub label: String,
    /// Covariate values in column order.
    pub covariates: Vec<String>,
    /// Covariate values joined with `_`.
    pub cov_key: String,
    /// The parsed perturbation set (empty for control).
    pub perturbations: Vec<String>,
    /// Row indices of the unit's cells, ascending.
    pub cells: Vec<usize>,
}

impl Unit {
    /// True for a control unit.
    pub fn is_control(&self) -> bool {
        self.perturbations.is_empty()
    }

    /// The unit's condition.
    pub fn condition(&self) -> Condition {
        Condition {
            perturbations: self.perturbations.clone(),
            covariates: self.covariates.clone(),
        }
    }

    /// `cov_key/label`, a readable unique name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.cov_key, self.label)
    }
}

/// Groups cells into units sorted by (cov key, label): `perts` `[n]` is each
/// cell's perturbation label, `covs` `[n_cov][n]` its covariate values;
/// returns the units and the unit index of every cell `[n]`.
pub(super) fn group_units(
    perts: &[String],
    covs: &[Vec<String>],
    control: &str,
) -> (Vec<Unit>, Vec<usize>) {
    let n = perts.len();
    let mut map: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let cv: Vec<&str> = covs.iter().map(|c| c[i].as_str()).collect();
        map.entry((cv.join("_"), perts[i].clone()))
            .or_default()
            .push(i);
    }
    let mut units = Vec::with_capacity(map.len());
    let mut cell_unit = vec![0usize; n];
    for ((cov_key, label), cells) in map {
        let first = cells[0];
        for &c in &cells {
            cell_unit[c] = units.len();
        }
        units.push(Unit {
            perturbations: parse_perturbations(&label, control),
            covariates: covs.iter().map(|c| c[first].clone()).collect(),
            cov_key,
            label,
            cells,
        });
    }
    (units, cell_unit)
}
