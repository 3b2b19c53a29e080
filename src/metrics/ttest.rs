//! The `scores` aggregation (metrics.md): per covariate, a t-score per gene of
//! a unit's cells against that covariate's control cells, in scanpy's
//! `t-test_overestim_var` form
//!
//! `t = (mu_p - mu_c) / sqrt(s2_p / n_p + s2_c / n_p)`
//!
//! with unbiased (ddof = 1) variances and `n_p` for BOTH terms. NaN and +-inf
//! become 0, so a gene with zero variance in both groups scores 0 (as does a
//! unit or a control group of one cell). Scores are then rounded to f32, the
//! type scanpy stores them in: genes whose scores are equal in exact
//! arithmetic (common in sparse data, e.g. |t| = 1 for a gene seen in one
//! cell of the unit and in no control) tie exactly, and the top-k tie rule
//! of [`super::per_unit`] decides between them instead of rounding noise.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// t-scores of all units and genes at once.
///
/// * `mean_p`, `var_p`: `[U, G]` f64 unit means and ddof-1 variances.
/// * `n_p`: `U` cell counts.
/// * `mean_c`, `var_c`: `[G]` f64 control mean and ddof-1 variance.
/// * returns `[U, G]` f64 (values representable in f32).
pub fn t_scores(
    mean_p: &Tensor,
    var_p: &Tensor,
    n_p: &[usize],
    mean_c: &Tensor,
    var_c: &Tensor,
) -> Result<Tensor> {
    let u = mean_p.size().first().copied().unwrap_or(0);
    if u as usize != n_p.len() {
        return Err(Error::Mismatch(format!(
            "{} units of means but {} cell counts",
            u,
            n_p.len()
        )));
    }
    let n: Vec<f64> = n_p.iter().map(|&n| n as f64).collect();
    let n = Tensor::f_from_slice(&n)?
        .f_to_device(mean_p.device())?
        .f_unsqueeze(1)?; // [U, 1]
    let num = mean_p.f_sub(&mean_c.f_unsqueeze(0)?)?;
    let den = var_p
        .f_div(&n)?
        .f_add(&var_c.f_unsqueeze(0)?.f_div(&n)?)?
        .f_sqrt()?;
    let t = super::aggregate::finite_or_zero(&num.f_div(&den)?)?;
    Ok(t.f_to_kind(Kind::Float)?.f_to_kind(Kind::Double)?)
}
