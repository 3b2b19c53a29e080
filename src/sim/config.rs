//! `SimConfig`: the knobs of the Perturb-seq simulator, with presets at the
//! sizes of the paper's data sets (PRiMeFlow, Table 1; PerturBench).
//!
//! The generative model each field feeds is described in [`super`] (module
//! docs). Every field has a default (the `demo` preset), so a JSON config
//! only needs the fields it changes.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings of one simulated data set. `Default` is the `demo` preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Total number of cells (exact).
    pub n_cells: usize,
    /// Number of genes.
    pub n_genes: usize,
    /// Number of cell lines (the covariate `cell_type`).
    pub n_cell_lines: usize,
    /// Number of single perturbations (`P000`, `P001`, ...).
    pub n_perturbations: usize,
    /// Number of two-perturbation combinations (`P003+P017`).
    pub n_combinations: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of gene programs (gene sets perturbations act on).
    pub n_programs: usize,
    /// Genes per program.
    pub program_size: usize,
    /// Typical |log fold change| of a perturbation on its primary program's
    /// genes (natural log of the mean count).
    pub effect_scale: f64,
    /// Standard deviation of the log of the per-cell-line effect multiplier
    /// (covariate-dependent strength).
    pub line_effect_sd: f64,
    /// Log fold change of a perturbation's own target gene (knock-down < 0;
    /// 0 disables).
    pub target_effect: f64,
    /// Responder fractions are drawn uniformly from `[lo, hi]`.
    pub responder_fraction: [f64; 2],
    /// Standard deviation of a combination's interaction coefficients (log
    /// scale, per program the combination touches).
    pub interaction_scale: f64,
    /// Standard deviation of the baseline log abundance across genes.
    pub gene_mean_sd: f64,
    /// Standard deviation of a cell line's per-gene log deviation from the
    /// shared baseline.
    pub cell_line_sd: f64,
    /// Sequencing depth: mean counts per gene per cell, so the mean library
    /// size (total counts per cell) is `counts_per_gene * n_genes`.
    pub counts_per_gene: f64,
    /// Variance of the gamma-distributed size factor (mean 1); 0 = none.
    pub library_size_dispersion: f64,
    /// Typical negative-binomial dispersion phi (Var = mu + phi mu^2); genes
    /// vary log-normally around it.
    pub nb_dispersion: f64,
    /// Fraction of each cell line's cells that are controls.
    pub control_fraction: f64,
    /// Probability that a single perturbation not used by any combination is
    /// absent from a cell line (each stays in at least one line).
    pub absent_fraction: f64,
    /// PerturBench preprocessing: counts are scaled to this total per cell
    /// before log1p.
    pub target_sum: f64,
    /// Cells generated per chunk (memory bound of the file writer). Does not
    /// change the data.
    pub chunk_cells: usize,
    /// Worker threads per chunk (1 or more). Does not change the data.
    pub threads: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            n_cells: 8000,
            n_genes: 500,
            n_cell_lines: 3,
            n_perturbations: 24,
            n_combinations: 8,
            seed: 0,
            n_programs: 12,
            program_size: 25,
            effect_scale: 1.0,
            line_effect_sd: 0.4,
            target_effect: -1.5,
            responder_fraction: [0.4, 0.9],
            interaction_scale: 0.5,
            gene_mean_sd: 1.2,
            cell_line_sd: 0.3,
            counts_per_gene: 2.0,
            library_size_dispersion: 0.1,
            nb_dispersion: 0.2,
            control_fraction: 0.12,
            absent_fraction: 0.15,
            target_sum: 1e4,
            chunk_cells: 8192,
            threads: 2,
        }
    }
}

/// Names accepted by [`SimConfig::preset`].
pub const PRESETS: [&str; 4] = ["demo", "tiny", "norman19", "srivatsan20"];

impl SimConfig {
    /// A preset by name:
    /// * `demo` (the default): 3 lines, 24 singles, 8 combinations, 8,000
    ///   cells x 500 genes;
    /// * `tiny`: 3 lines, 8 singles, 3 combinations, 900 cells x 64 genes (for
    ///   tests);
    /// * `norman19`: Norman et al. 2019 scale: 1 line, 105 singles, 131
    ///   combinations, 91,205 cells x 2,000 genes;
    /// * `srivatsan20`: sci-Plex 3 scale: 3 lines, 188 perturbations, no
    ///   combinations, 178,213 cells x 2,000 genes, shallow (0.5 counts per
    ///   gene, about 80% zeros, as in sci-Plex).
    pub fn preset(name: &str) -> Result<SimConfig> {
        let d = SimConfig::default();
        let cfg = match name.trim().to_ascii_lowercase().as_str() {
            "demo" | "default" => d,
            "tiny" => SimConfig {
                n_cells: 900,
                n_genes: 64,
                n_perturbations: 8,
                n_combinations: 3,
                n_programs: 6,
                program_size: 8,
                ..d
            },
            "norman19" => SimConfig {
                n_cells: 91_205,
                n_genes: 2000,
                n_cell_lines: 1,
                n_perturbations: 105,
                n_combinations: 131,
                n_programs: 40,
                program_size: 40,
                control_fraction: 0.08,
                ..d
            },
            "srivatsan20" => SimConfig {
                n_cells: 178_213,
                n_genes: 2000,
                n_cell_lines: 3,
                n_perturbations: 188,
                n_combinations: 0,
                n_programs: 40,
                program_size: 40,
                target_effect: 0.0,
                counts_per_gene: 0.5,
                control_fraction: 0.05,
                absent_fraction: 0.05,
                ..d
            },
            other => return Err(Error::unknown("simulation preset", other, &PRESETS)),
        };
        Ok(cfg)
    }

    /// Number of (cell line, condition) units including controls, once the
    /// absent pairs are known; an upper bound before that.
    pub fn max_units(&self) -> usize {
        self.n_cell_lines * (1 + self.n_perturbations + self.n_combinations)
    }

    /// Checks every field; the error names the field and its value.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| {
            Err(Error::invalid(format!("simulation setting '{field}'"), msg))
        };
        let at_least = |field: &str, v: usize, min: usize| -> Result<()> {
            if v < min {
                return bad(field, format!("{v} is below the minimum {min}"));
            }
            Ok(())
        };
        at_least("n_genes", self.n_genes, 2)?;
        at_least("n_cell_lines", self.n_cell_lines, 1)?;
        at_least("n_perturbations", self.n_perturbations, 1)?;
        at_least("n_programs", self.n_programs, 1)?;
        at_least("program_size", self.program_size, 1)?;
        at_least("chunk_cells", self.chunk_cells, 1)?;
        at_least("threads", self.threads, 1)?;
        if self.program_size > self.n_genes {
            return bad(
                "program_size",
                format!(
                    "{} is larger than n_genes ({})",
                    self.program_size, self.n_genes
                ),
            );
        }
        let limits = [
            ("n_cells", self.n_cells, 1_000_000_000),
            ("n_genes", self.n_genes, 1_000_000),
            ("n_cell_lines", self.n_cell_lines, 10_000),
            ("n_perturbations", self.n_perturbations, 1_000_000),
            ("n_combinations", self.n_combinations, 1_000_000),
            ("n_programs", self.n_programs, 100_000),
            ("threads", self.threads, 256),
        ];
        for (field, v, max) in limits {
            if v > max {
                return bad(field, format!("{v} is above the supported maximum {max}"));
            }
        }
        if self.n_programs * self.program_size > 100_000_000 {
            return bad(
                "n_programs",
                format!(
                    "{} programs x {} genes is more than 1e8 loadings",
                    self.n_programs, self.program_size
                ),
            );
        }
        let max_pairs = self.n_perturbations * (self.n_perturbations - 1) / 2;
        if self.n_combinations > max_pairs {
            return bad(
                "n_combinations",
                format!(
                    "{} is more than the {max_pairs} distinct pairs of {} perturbations",
                    self.n_combinations, self.n_perturbations
                ),
            );
        }
        let min_cells = 2 * self.max_units();
        if self.n_cells < min_cells {
            return bad(
                "n_cells",
                format!(
                    "{} cells are too few for {} cell lines x ({} perturbations + {} combinations + control); need at least {min_cells}",
                    self.n_cells, self.n_cell_lines, self.n_perturbations, self.n_combinations
                ),
            );
        }
        let finite_nonneg = [
            ("effect_scale", self.effect_scale),
            ("line_effect_sd", self.line_effect_sd),
            ("interaction_scale", self.interaction_scale),
            ("gene_mean_sd", self.gene_mean_sd),
            ("cell_line_sd", self.cell_line_sd),
            ("library_size_dispersion", self.library_size_dispersion),
        ];
        for (field, v) in finite_nonneg {
            if !(0.0..=20.0).contains(&v) {
                return bad(field, format!("{v} is not a number in [0, 20]"));
            }
        }
        if !self.target_effect.is_finite() || self.target_effect.abs() > 20.0 {
            return bad(
                "target_effect",
                format!("{} is not a number in [-20, 20]", self.target_effect),
            );
        }
        let positive = [
            ("counts_per_gene", self.counts_per_gene, 1e6),
            ("nb_dispersion", self.nb_dispersion, 100.0),
            ("target_sum", self.target_sum, 1e12),
        ];
        for (field, v, max) in positive {
            if !v.is_finite() || v <= 0.0 || v > max {
                return bad(field, format!("{v} is not a number in (0, {max}]"));
            }
        }
        let [lo, hi] = self.responder_fraction;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= 1.0) {
            return bad(
                "responder_fraction",
                format!("[{lo}, {hi}] is not a range within [0, 1]"),
            );
        }
        for (field, v) in [
            ("control_fraction", self.control_fraction),
            ("absent_fraction", self.absent_fraction),
        ] {
            if !v.is_finite() || !(0.0..1.0).contains(&v) {
                return bad(field, format!("{v} is not in [0, 1)"));
            }
        }
        if self.control_fraction == 0.0 {
            return bad(
                "control_fraction",
                "0: every cell line needs control cells".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_unknown_is_an_error() {
        for p in PRESETS {
            SimConfig::preset(p).unwrap().validate().unwrap();
        }
        let e = SimConfig::preset("jiang").unwrap_err().to_string();
        assert!(e.contains("'jiang'") && e.contains("srivatsan20"), "{e}");
        let cfg = SimConfig {
            n_combinations: 1000,
            ..SimConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("n_combinations") && e.contains("1000"), "{e}");
    }
}
