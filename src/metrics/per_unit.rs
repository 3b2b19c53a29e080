//! Per-unit metrics on aggregated vectors (metrics.md, "Per-unit metrics"),
//! computed for every (predicted unit, reference unit) pair of a covariate at
//! once: `M[q, p] = metric(pred_q, ref_p)`, `[U, V]`. The diagonal of the
//! matched units is the per-unit value; the whole matrix feeds the rank
//! metrics. All f64.
//!
//! * rmse `sqrt(mean_g (x_g - y_g)^2)`, mse, mae: exact differences (no
//!   `|a|^2 + |b|^2 - 2ab` cancellation, so identical vectors give exactly 0).
//! * cosine `x.y / (|x| |y|)`; a zero vector gives NaN (0/0), as NumPy does.
//! * pearson: cosine of the mean-centred vectors (NaN for a constant vector,
//!   as `scipy.stats.pearsonr`).
//! * r2: PerturBench calls `sklearn.metrics.r2_score(pred, ref)`, so the
//!   prediction plays `y_true`: `1 - sum (x - y)^2 / sum (x - mean x)^2`; when
//!   `x` is constant it is 1 if `x == y` exactly, else 0 (sklearn's
//!   `force_finite`).
//! * top_k_recall: |top-k(x) ∩ top-k(y)| / k by |value| (k = 50: "DEG
//!   recall"); the denominator is always k. Ties at the k-th place go to the
//!   gene listed first in the reference's var order (a stable descending sort
//!   of |t|), so a vector compared with itself always scores 1. PerturBench
//!   leaves this to NumPy's unstable `argsort`, whose choice among tied genes
//!   depends on the CPU's sorting kernel.

use tch::{Kind, Tensor};

use super::config::UnitMetric;
use crate::error::{Error, Result};

/// Rows of the prediction handled per broadcast block in the difference
/// metrics (bounds memory to `ROWS x V x G` f64).
const ROWS: i64 = 8;

/// `M[q, p] = metric(pred[q], reference[p])`.
///
/// * `pred`: `[U, G]` f64; `reference`: `[V, G]` f64.
/// * returns `[U, V]` f64.
pub fn pairwise(
    metric: UnitMetric,
    pred: &Tensor,
    reference: &Tensor,
    top_k: usize,
) -> Result<Tensor> {
    let (u, g) = dims(pred)?;
    let (_, g2) = dims(reference)?;
    if g != g2 {
        return Err(Error::Mismatch(format!(
            "prediction has {g} features but the reference {g2}"
        )));
    }
    let pred = pred.f_to_kind(Kind::Double)?;
    let reference = reference.f_to_kind(Kind::Double)?;
    match metric {
        UnitMetric::Mse => sq_mean(&pred, &reference, u),
        UnitMetric::Rmse => Ok(sq_mean(&pred, &reference, u)?.f_sqrt()?),
        UnitMetric::Mae => pair_mean(&pred, &reference, u, |d| d.f_abs_()),
        UnitMetric::Cosine => cosine(&pred, &reference),
        UnitMetric::Pearson => {
            let pc = pred.f_sub(&pred.f_mean_dim(Some(&[1i64][..]), true, Kind::Double)?)?;
            let rc =
                reference.f_sub(&reference.f_mean_dim(Some(&[1i64][..]), true, Kind::Double)?)?;
            Ok(cosine(&pc, &rc)?.f_clamp(-1.0, 1.0)?)
        }
        UnitMetric::R2 => {
            let ss_res = sq_mean(&pred, &reference, u)?.f_mul_scalar(g as f64)?; // [U, V]
            let pc = pred.f_sub(&pred.f_mean_dim(Some(&[1i64][..]), true, Kind::Double)?)?;
            let ss_tot = pc
                .f_square()?
                .f_sum_dim_intlist(Some(&[1i64][..]), true, Kind::Double)?; // [U, 1]
            let r2 = ss_res.f_div(&ss_tot)?.f_neg()?.f_add_scalar(1.0)?;
            // sklearn force_finite: constant y_true -> 1 if perfect else 0.
            let constant = ss_tot.f_eq(0.0)?.f_expand_as(&r2)?;
            let perfect = ss_res.f_eq(0.0)?.f_to_kind(Kind::Double)?;
            Ok(perfect.f_where_self(&constant, &r2)?)
        }
        UnitMetric::TopKRecall => {
            let k = top_k.min(g as usize).max(1) as i64;
            let a = top_k_indicator(&pred, k)?;
            let b = top_k_indicator(&reference, k)?;
            Ok(a.f_mm(&b.f_transpose(0, 1)?)?
                .f_div_scalar(top_k.max(1) as f64)?)
        }
        UnitMetric::Mmd => Err(Error::invalid(
            "metric",
            "mmd compares cells, not aggregated vectors (see metrics::distance)",
        )),
    }
}

/// `[U, G]` 0/1 indicator of each row's k largest |values| (ties: lower gene
/// index first).
pub fn top_k_indicator(x: &Tensor, k: i64) -> Result<Tensor> {
    let abs = x.f_abs()?.f_to_kind(Kind::Float)?; // scores are f32 values (scanpy)
    let (_, idx) = abs.f_sort_stable(true, 1, true)?;
    let top = idx.f_narrow(1, 0, k)?;
    Ok(x.f_zeros_like()?
        .f_to_kind(Kind::Double)?
        .f_scatter_value(1, &top, 1.0)?)
}

fn dims(t: &Tensor) -> Result<(i64, i64)> {
    match t.size().as_slice() {
        [a, b] => Ok((*a, *b)),
        other => Err(Error::Mismatch(format!(
            "expected a [units, genes] matrix, got shape {other:?}"
        ))),
    }
}

/// Mean squared difference of every row pair, `[U, V]`.
fn sq_mean(pred: &Tensor, reference: &Tensor, u: i64) -> Result<Tensor> {
    pair_mean(pred, reference, u, |d| d.f_square_())
}

/// Mean over genes of `f(pred_i - reference_j)` for every row pair, `[U, V]`,
/// `ROWS` prediction rows at a time (the `[rows, V, G]` difference is the
/// memory bound). `f` works in place on the difference, which lives in one
/// buffer reused by every block: a fresh one per block (and another for
/// `f`'s result) faulted in about 1 GB of new pages per covariate at
/// Srivatsan20 size, more time in the kernel than in the arithmetic.
fn pair_mean(
    pred: &Tensor,
    reference: &Tensor,
    u: i64,
    f: impl Fn(&mut Tensor) -> std::result::Result<Tensor, tch::TchError>,
) -> Result<Tensor> {
    let v = reference.size().first().copied().unwrap_or(0);
    let g = reference.size().get(1).copied().unwrap_or(0);
    let right = reference.f_unsqueeze(0)?;
    let buf = Tensor::f_empty([ROWS.min(u).max(0), v, g], (pred.kind(), pred.device()))?;
    let mut blocks = Vec::new();
    for r0 in (0..u).step_by(ROWS as usize) {
        let len = ROWS.min(u - r0);
        let mut d = buf.f_narrow(0, 0, len)?;
        let _ = pred
            .f_narrow(0, r0, len)?
            .f_unsqueeze(1)?
            .f_sub_out(&d, &right)?;
        let _ = f(&mut d)?;
        blocks.push(d.f_mean_dim(Some(&[2i64][..]), false, Kind::Double)?);
    }
    cat_rows(blocks, v)
}

fn cat_rows(blocks: Vec<Tensor>, v: i64) -> Result<Tensor> {
    if blocks.is_empty() {
        return Ok(Tensor::f_zeros([0, v], (Kind::Double, tch::Device::Cpu))?);
    }
    Ok(Tensor::f_cat(&blocks, 0)?)
}

fn cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = a.f_mm(&b.f_transpose(0, 1)?)?;
    let na = a
        .f_square()?
        .f_sum_dim_intlist(Some(&[1i64][..]), true, Kind::Double)?
        .f_sqrt()?; // [U, 1]
    let nb = b
        .f_square()?
        .f_sum_dim_intlist(Some(&[1i64][..]), true, Kind::Double)?
        .f_sqrt()?; // [V, 1]
    Ok(dot.f_div(&na.f_mm(&nb.f_transpose(0, 1)?)?)?)
}
