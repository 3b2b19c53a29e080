//! cell-eval 0.8.2's pseudobulk ("anndata pair") metrics: the perturbation
//! discrimination score, the errors of the mean expression, and the Pearson
//! correlation of the effects.
//!
//! A pseudobulk is the mean of a group's log1p values per gene (polars'
//! `group_by(pert).mean()`, stored as f32). The *effect* of perturbation p
//! is `bulk_p - bulk_ctrl` in f32, where the control is the same file's
//! control cells: the real effect uses the real controls, the predicted
//! effect the predicted file's own controls.
//!
//! * `mae`, `mse` (per perturbation): mean over genes of `|pred_p - real_p|`
//!   and `(pred_p - real_p)^2`, on the pseudobulks themselves (no control).
//! * `mae_delta`, `mse_delta`, `pearson_delta`: the same, and Pearson's r,
//!   on the effects.
//! * `discrimination_score_l1` (per perturbation p): the L1 distances from
//!   the predicted effect of p to the real effect of every perturbation q,
//!   leaving out the gene whose name is p; with `rank` the 0-based position
//!   of q = p among the distances sorted ascending, the score is
//!   `1 - rank / n_perts` (1 best, about 0.5 random). Ties: cell-eval takes
//!   numpy's `argsort` (quicksort) order, which is not specified for equal
//!   distances; here `rank` counts the distances strictly below p's, so p
//!   wins every tie. Exact ties need two real effects equally far from the
//!   prediction, which happens with duplicated perturbations, not in
//!   practice.

use crate::anndata::Expr;

/// `[G]` f32 mean of the rows `cells` of `x` (summed in f64, stored in f32
/// as polars returns a Float32 column's mean).
pub fn bulk(x: &Expr, cells: &[usize]) -> Vec<f32> {
    let mut s = vec![0f64; x.ncols()];
    x.for_each_in_rows(cells, |j, v| {
        if let Some(acc) = s.get_mut(j) {
            *acc += v as f64;
        }
    });
    let n = cells.len() as f64;
    s.iter().map(|v| (v / n) as f32).collect()
}

/// `[G]` f32 `bulk - ctrl`.
pub fn effect(bulk: &[f32], ctrl: &[f32]) -> Vec<f32> {
    bulk.iter().zip(ctrl).map(|(a, b)| a - b).collect()
}

/// Mean over genes of `|a - b|`.
pub fn mean_abs_error(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum();
    s / a.len() as f64
}

/// Mean over genes of `(a - b)^2`.
pub fn mean_squared_error(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    s / a.len() as f64
}

/// Pearson's r of two `[G]` vectors (NaN when either is constant, as
/// scipy's `pearsonr`).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let r = sab / (saa.sqrt() * sbb.sqrt());
    if r.is_nan() {
        f64::NAN
    } else {
        r.clamp(-1.0, 1.0)
    }
}

/// Discrimination scores (L1) of every perturbation.
///
/// * `real`, `pred`: `[P][G]` effects, rows in the same perturbation order.
/// * `exclude`: per perturbation, the gene column named like it (left out of
///   its distances), if any.
/// * returns `[P]` scores `1 - rank / P`.
pub fn discrimination_l1(
    real: &[Vec<f32>],
    pred: &[Vec<f32>],
    exclude: &[Option<usize>],
) -> Vec<f64> {
    let n = real.len();
    (0..n)
        .map(|p| {
            let dist: Vec<f64> = real
                .iter()
                .map(|r| {
                    let mut d = 0.0;
                    for (g, (&a, &b)) in r.iter().zip(&pred[p]).enumerate() {
                        if exclude[p] != Some(g) {
                            d += (a as f64 - b as f64).abs();
                        }
                    }
                    d
                })
                .collect();
            let rank = dist.iter().filter(|&&d| d < dist[p]).count();
            1.0 - rank as f64 / n as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrimination_perfect_and_swapped() {
        let real = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![5.0, 5.0]];
        let none = vec![None; 3];
        assert_eq!(discrimination_l1(&real, &real, &none), vec![1.0; 3]);
        let swapped = vec![real[1].clone(), real[0].clone(), real[2].clone()];
        let s = discrimination_l1(&real, &swapped, &none);
        assert_eq!(s, vec![1.0 - 1.0 / 3.0, 1.0 - 1.0 / 3.0, 1.0]);
    }

    #[test]
    fn excluded_gene_is_left_out() {
        // With gene 1, prediction 0 is closest to real 1; without, to real 0.
        let real = vec![vec![9.0, 0.0], vec![8.0, 5.0]];
        let pred = vec![vec![9.0, 5.0], vec![8.0, 5.0]];
        let s = discrimination_l1(&real, &pred, &[Some(1), None]);
        assert_eq!(s[0], 1.0);
        let s = discrimination_l1(&real, &pred, &[None, None]);
        assert_eq!(s[0], 0.5);
    }

    #[test]
    fn errors_and_pearson() {
        let a = [1.0, 2.0, 3.0];
        let b = [1.0, 4.0, 3.0];
        assert_eq!(mean_abs_error(&a, &b), 2.0 / 3.0);
        assert_eq!(mean_squared_error(&a, &b), 4.0 / 3.0);
        assert!((pearson(&a, &a) - 1.0).abs() < 1e-12);
        assert!(pearson(&a, &[1.0, 1.0, 1.0]).is_nan());
    }
}
