//! Differential expression of every perturbation against the control cells
//! of the same file, as cell-eval 0.8.2 asks pdex 0.3 for it
//! (`pdex(adata, groupby=pert_col, mode="ref", reference=control,
//! is_log1p=True, geometric_mean=True, epsilon=0.0)`), and the top-gene
//! overlap metrics cell-eval computes from two such tables.
//!
//! Per perturbation p and gene g:
//! * `log2_fold_change = log2(expm1(mean_p[g]) / expm1(mean_ctrl[g]))`, the
//!   means of the log1p values taken in f32 as numpy does (sequential sum
//!   over cells, then divided by the count), `expm1` in f32, the ratio and
//!   log2 in f64; `0/0` (unexpressed in both) is 0, a one-sided zero `+-inf`;
//! * `p_value`: the Wilcoxon rank-sum test of [`super::wilcoxon`];
//! * `fdr`: Benjamini-Hochberg over the genes of that perturbation.
//!
//! cell-eval then stores `fdr` and `log2_fold_change` as f32
//! (`DEResults.__post_init__`), so both are kept here in f32: a gene is
//! significant when `fdr_f32 < 0.05`, and genes are ranked by
//! `|log2_fold_change|_f32` descending with ties in gene order (polars'
//! ordinal rank keeps the order of appearance, which is var order).

use crate::anndata::Expr;

use super::rank_sums::{rank_sum_p_values, NO_GROUP};
use super::wilcoxon::benjamini_hochberg;
use crate::error::{Error, Result};

/// The DE table of one perturbation, one value per gene (`[G]` each).
#[derive(Debug, Clone, PartialEq)]
pub struct DeTable {
    /// log2 fold change of the pseudobulk (geometric) means, f32 as
    /// cell-eval keeps it.
    pub lfc: Vec<f32>,
    /// Benjamini-Hochberg adjusted p-values, f32 as cell-eval keeps them.
    pub fdr: Vec<f32>,
}

impl DeTable {
    /// Genes with `fdr < threshold`, by `|lfc|` descending, ties in gene
    /// order (cell-eval `DEResults.get_top_genes`).
    pub fn top_genes(&self, fdr_threshold: f32) -> Vec<usize> {
        let mut sig: Vec<usize> = (0..self.fdr.len())
            .filter(|&g| self.fdr[g] < fdr_threshold)
            .collect();
        // Stable sort: equal |lfc| keep gene order.
        sig.sort_by(|&a, &b| self.lfc[b].abs().total_cmp(&self.lfc[a].abs()));
        sig
    }

    /// Number of genes with `fdr < threshold`.
    pub fn n_significant(&self, fdr_threshold: f32) -> usize {
        self.fdr.iter().filter(|&&q| q < fdr_threshold).count()
    }
}

/// Mean of the rows `cells` of `x` per gene in f32, summed in row order and
/// divided by the count (numpy's `X[cells].mean(axis=0)` on float32; adding
/// the zeros a CSR row does not store changes no sum). `[G]`.
pub fn mean_f32(x: &Expr, cells: &[usize]) -> Vec<f32> {
    let mut s = vec![0f32; x.ncols()];
    x.for_each_in_rows(cells, |j, v| {
        if let Some(acc) = s.get_mut(j) {
            *acc += v;
        }
    });
    let n = cells.len() as f32;
    s.iter().map(|v| v / n).collect()
}

/// pdex's `log2_fold_change` with `epsilon = 0` on geometric pseudobulks of
/// log1p data: `[G]` f32 from two `[G]` f32 means of log1p values.
pub fn log2_fold_change(mean_p: &[f32], mean_ctrl: &[f32]) -> Vec<f32> {
    mean_p
        .iter()
        .zip(mean_ctrl)
        .map(|(&t, &r)| {
            let t = t.exp_m1() as f64;
            let r = r.exp_m1() as f64;
            let v = (t / r).log2();
            if v.is_nan() {
                0.0
            } else {
                v as f32
            }
        })
        .collect()
}

/// The DE tables of `groups` (each a list of row indices of `x`, disjoint)
/// against the rows `control`, all genes at once: one sorted walk per gene
/// gives every group's rank-sum test ([`rank_sum_p_values`]). Runs on up to
/// `threads` threads. `x`: `[n_cells, G]` log1p expression.
pub fn de_tables(
    x: &Expr,
    groups: &[Vec<usize>],
    control: &[usize],
    threads: usize,
) -> Result<Vec<DeTable>> {
    let mut group_of = vec![NO_GROUP; x.nrows()];
    let tagged = groups
        .iter()
        .enumerate()
        .map(|(g, c)| (g as u32, c.as_slice()));
    for (g, cells) in tagged.chain(std::iter::once((groups.len() as u32, control))) {
        for &c in cells {
            let slot = group_of.get_mut(c).ok_or_else(|| {
                Error::invalid(
                    "cell index",
                    format!("{c} is out of range ({} cells)", x.nrows()),
                )
            })?;
            if *slot != NO_GROUP {
                return Err(Error::invalid(
                    "differential expression groups",
                    format!("cell {c} is in two groups"),
                ));
            }
            *slot = g;
        }
    }
    let p = rank_sum_p_values(x, &group_of, groups.len(), threads)?;
    let mean_ctrl = mean_f32(x, control);
    Ok(groups
        .iter()
        .zip(p)
        .map(|(cells, p)| {
            let lfc = log2_fold_change(&mean_f32(x, cells), &mean_ctrl);
            let fdr = benjamini_hochberg(&p).iter().map(|&q| q as f32).collect();
            DeTable { lfc, fdr }
        })
        .collect())
}

/// cell-eval's `DEComparison.compute_overlap` for one perturbation.
/// `real`, `pred`: the top genes of each ([`DeTable::top_genes`]).
/// `overlap` (recall) takes `k_eff = min(k or |real|, |real|)`, `precision`
/// `k_eff = min(k or |pred|, |pred|)`; the value is
/// `|real[..k_eff] ∩ pred[..k_eff]| / k_eff`, 0 when `k_eff = 0`.
pub fn overlap(real: &[usize], pred: &[usize], k: Option<usize>, precision: bool) -> f64 {
    let base = if precision { pred.len() } else { real.len() };
    let k_eff = k.unwrap_or(base).min(base);
    if k_eff == 0 {
        return 0.0;
    }
    let r = &real[..k_eff.min(real.len())];
    let p: std::collections::HashSet<usize> =
        pred[..k_eff.min(pred.len())].iter().copied().collect();
    let hit = r.iter().filter(|g| p.contains(g)).count();
    hit as f64 / k_eff as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_genes_ranks_by_abs_lfc_with_ties_in_gene_order() {
        let t = DeTable {
            lfc: vec![1.0, -3.0, 2.0, 3.0, 0.5],
            fdr: vec![0.01, 0.01, 0.2, 0.01, 0.049],
        };
        assert_eq!(t.top_genes(0.05), vec![1, 3, 0, 4]);
        assert_eq!(t.n_significant(0.05), 4);
    }

    #[test]
    fn overlap_and_precision() {
        let real = [1, 2, 3, 4];
        let pred = [2, 9, 1];
        assert_eq!(overlap(&real, &pred, None, false), 2.0 / 4.0);
        assert_eq!(overlap(&real, &pred, None, true), 2.0 / 3.0);
        assert_eq!(overlap(&real, &pred, Some(2), false), 1.0 / 2.0);
        assert_eq!(overlap(&[], &pred, None, false), 0.0);
    }

    #[test]
    fn lfc_zero_over_zero_is_zero() {
        let l = log2_fold_change(&[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]);
        assert_eq!(l[0], 0.0);
        assert_eq!(l[1], f32::INFINITY);
        assert_eq!(l[2], f32::NEG_INFINITY);
    }
}
