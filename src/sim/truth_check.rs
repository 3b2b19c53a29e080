//! [`SimTruth::check`]: the shape and index checks of a simulation's
//! ground truth (read back from a file's `uns`, so it may be corrupt).

use super::truth::SimTruth;
use crate::error::{Error, Result};

impl SimTruth {
    /// Checks shapes `[L, G]`, `[K, S]`, `[P, K]`, `[P, L]`, `[C, K]` and
    /// index ranges, so that no later lookup can go out of bounds.
    pub fn check(&self) -> Result<()> {
        let (l, p, c, g, k) = (
            self.cell_lines.len(),
            self.perturbations.len(),
            self.combinations.len(),
            self.genes.len(),
            self.program_genes.len(),
        );
        let bad = |field: &str, msg: String| {
            Err(Error::invalid(
                format!("simulation truth field '{field}'"),
                msg,
            ))
        };
        let rows = |field: &str, m: usize, n: usize, shape: &[usize]| -> Result<()> {
            if shape.len() != m || shape.iter().any(|&r| r != n) {
                return bad(field, format!("expected shape [{m}, {n}]"));
            }
            Ok(())
        };
        rows(
            "log_baseline",
            l,
            g,
            &self
                .log_baseline
                .iter()
                .map(|r| r.len())
                .collect::<Vec<_>>(),
        )?;
        rows(
            "program_loadings",
            k,
            self.program_genes.first().map_or(0, |r| r.len()),
            &self
                .program_loadings
                .iter()
                .map(|r| r.len())
                .collect::<Vec<_>>(),
        )?;
        rows(
            "strength",
            p,
            k,
            &self.strength.iter().map(|r| r.len()).collect::<Vec<_>>(),
        )?;
        rows(
            "line_multiplier",
            p,
            l,
            &self
                .line_multiplier
                .iter()
                .map(|r| r.len())
                .collect::<Vec<_>>(),
        )?;
        rows(
            "present",
            p,
            l,
            &self.present.iter().map(|r| r.len()).collect::<Vec<_>>(),
        )?;
        rows(
            "interaction",
            c,
            k,
            &self.interaction.iter().map(|r| r.len()).collect::<Vec<_>>(),
        )?;
        for (field, n) in [("gene_dispersion", self.gene_dispersion.len())] {
            if n != g {
                return bad(field, format!("{n} values for {g} genes"));
            }
        }
        for (field, n) in [
            ("target_gene", self.target_gene.len()),
            ("target_effect", self.target_effect.len()),
            ("responder_fraction", self.responder_fraction.len()),
        ] {
            if n != p {
                return bad(field, format!("{n} values for {p} perturbations"));
            }
        }
        if self.combination_members.len() != c {
            return bad(
                "combination_members",
                format!(
                    "{} pairs for {c} combinations",
                    self.combination_members.len()
                ),
            );
        }
        if self
            .program_genes
            .iter()
            .flatten()
            .chain(&self.target_gene)
            .any(|&i| i as usize >= g)
        {
            return bad(
                "program_genes",
                format!("a gene index is out of range (n_genes {g})"),
            );
        }
        if self
            .combination_members
            .iter()
            .flatten()
            .any(|&i| i as usize >= p)
        {
            return bad(
                "combination_members",
                format!("a perturbation index is out of range ({p} perturbations)"),
            );
        }
        Ok(())
    }
}
