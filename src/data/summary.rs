//! [`DatasetSummary`]: what `Dataset::summary` reports (shape, columns,
//! per-covariate counts) and how it prints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Per-covariate-key counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CovSummary {
    pub control_cells: usize,
    pub perturbations: usize,
    pub combinations: usize,
    pub perturbed_cells: usize,
}

/// What `Dataset::summary` reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetSummary {
    pub source: String,
    pub n_cells: usize,
    pub n_genes: usize,
    pub perturbation_column: String,
    pub covariate_columns: Vec<String>,
    pub control: String,
    /// Non-control units.
    pub n_units: usize,
    /// Distinct single perturbations.
    pub n_perturbations: usize,
    pub covariates: BTreeMap<String, CovSummary>,
}

impl std::fmt::Display for DatasetSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Dataset {}: {} cells x {} genes",
            self.source, self.n_cells, self.n_genes
        )?;
        writeln!(
            f,
            "  perturbation column '{}' (control '{}'), covariates [{}]",
            self.perturbation_column,
            self.control,
            self.covariate_columns.join(", ")
        )?;
        writeln!(
            f,
            "  {} perturbed units, {} distinct perturbations",
            self.n_units, self.n_perturbations
        )?;
        writeln!(
            f,
            "  {:<24} {:>9} {:>14} {:>13} {:>15}",
            "covariate", "controls", "perturbations", "combinations", "perturbed cells"
        )?;
        for (k, c) in &self.covariates {
            writeln!(
                f,
                "  {:<24} {:>9} {:>14} {:>13} {:>15}",
                k, c.control_cells, c.perturbations, c.combinations, c.perturbed_cells
            )?;
        }
        Ok(())
    }
}
