//! Aggregations of a unit's cells (metrics.md, "Aggregations"): `average`
//! (mean of X in log1p space), `logfc` (log2 fold change of the means
//! against the covariate's controls, pseudocount 0.1) and the moments the
//! `scores` t-test needs. `pca` lives in [`super::pca`], `none` is the cells
//! themselves.
//!
//! Everything here is f64 and batched over genes (and over units where the
//! units are stacked).

use tch::{Device, Kind, Tensor};

use crate::anndata::Expr;

use crate::error::{Error, Result};

/// Densifies the cells `rows` of `x` (`[n_cells, n_genes]`, dense or CSR)
/// into a `[rows.len(), G]` f32 tensor on `device`. `cols`, when given, picks
/// (and orders) the genes: output gene `g` is input column `cols[g]`.
pub fn rows_tensor(
    x: &Expr,
    rows: &[usize],
    cols: Option<&[usize]>,
    device: Device,
) -> Result<Tensor> {
    let n_genes = cols.map(|c| c.len()).unwrap_or(x.ncols());
    // Written straight into the tensor's memory: a Vec first and then a
    // copy into the tensor allocated (and faulted in) every unit twice.
    let t = Tensor::f_empty(
        [rows.len() as i64, n_genes as i64],
        (Kind::Float, Device::Cpu),
    )?;
    let len = rows.len() * n_genes;
    if len > 0 {
        // SAFETY: `t` was just allocated here: a contiguous CPU f32 tensor
        // of exactly `len` elements that nothing else references while
        // this slice lives (it ends before `t` is used or returned).
        let buf = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), len) };
        x.rows_into(rows, cols, buf)?;
    }
    Ok(if device == Device::Cpu {
        t
    } else {
        t.f_to_device(device)?
    })
}

/// Mean and unbiased (ddof = 1) variance per gene of a group of cells.
#[derive(Debug)]
pub struct Moments {
    /// `[G]` f64 mean.
    pub mean: Tensor,
    /// `[G]` f64 variance with ddof = 1 (NaN when `n < 2`).
    pub var: Tensor,
    /// Number of cells.
    pub n: usize,
}

impl Moments {
    /// Moments of `x`, `[n, G]` (any float kind; computed in f64, two-pass:
    /// the mean, then `sum (x - mean)^2 / (n - 1)`).
    ///
    /// On the CPU the sums run over the rows of one f32 copy of `x`: the
    /// tensor form (an f64 copy, a centred copy and its square, 48 bytes per
    /// value of fresh memory) spent most of an evaluation's time in the
    /// kernel zeroing pages.
    pub fn of(x: &Tensor) -> Result<Moments> {
        let n = x.size().first().copied().unwrap_or(0).max(0) as usize;
        if x.device() == Device::Cpu && x.dim() == 2 {
            let g = x.size().get(1).copied().unwrap_or(0).max(0) as usize;
            let flat = x.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?;
            let v: Vec<f32> = Vec::<f32>::try_from(&flat)?;
            let (mean, var) = moments_rows(&v, n, g);
            return Ok(Moments {
                mean: Tensor::f_from_slice(&mean)?,
                var: Tensor::f_from_slice(&var)?,
                n,
            });
        }
        let x64 = x.f_to_kind(Kind::Double)?;
        let mean = x64.f_mean_dim(Some(&[0i64][..]), false, Kind::Double)?;
        let var = if n >= 2 {
            // Two-pass: sum (x - mean)^2 / (n - 1).
            let centred = x64.f_sub(&mean.f_unsqueeze(0)?)?;
            centred
                .f_square()?
                .f_sum_dim_intlist(Some(&[0i64][..]), false, Kind::Double)?
                .f_div_scalar((n - 1) as f64)?
        } else {
            mean.f_full_like(f64::NAN)?
        };
        Ok(Moments { mean, var, n })
    }
}

/// Per-column mean and ddof-1 variance (NaN when `n < 2`) of the row-major
/// `[n, g]` values `v`, accumulated in f64 in two passes over the rows.
fn moments_rows(v: &[f32], n: usize, g: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0f64; g];
    if g == 0 {
        return (mean, Vec::new());
    }
    for row in v.chunks_exact(g) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    if n < 2 {
        return (mean, vec![f64::NAN; g]);
    }
    let mut ss = vec![0f64; g];
    for row in v.chunks_exact(g) {
        for ((s, &m), &x) in ss.iter_mut().zip(&mean).zip(row) {
            let d = x as f64 - m;
            *s += d * d;
        }
    }
    ss.iter_mut().for_each(|s| *s /= (n - 1) as f64);
    (mean, ss)
}

/// Stacks `[G]` tensors into `[U, G]`.
pub fn stack(rows: &[&Tensor]) -> Result<Tensor> {
    if rows.is_empty() {
        return Err(Error::invalid("aggregation", "no units to stack"));
    }
    Ok(Tensor::f_stack(rows, 0)?)
}

/// `logfc` (metrics.md): `log2(mean_p + pc) - log2(mean_ctrl + pc)` per gene,
/// both means in log1p space; NaN and +-inf become 0.
///
/// * `mean_p`: `[U, G]` f64 unit means; `mean_ctrl`: `[G]` f64 control mean.
/// * returns `[U, G]` f64.
pub fn logfc(mean_p: &Tensor, mean_ctrl: &Tensor, pseudocount: f64) -> Result<Tensor> {
    let lp = mean_p.f_add_scalar(pseudocount)?.f_log2()?;
    let lc = mean_ctrl
        .f_add_scalar(pseudocount)?
        .f_log2()?
        .f_unsqueeze(0)?;
    finite_or_zero(&lp.f_sub(&lc)?)
}

/// Replaces NaN and +-inf by 0.
pub fn finite_or_zero(t: &Tensor) -> Result<Tensor> {
    let ok = t.f_isfinite()?;
    Ok(t.f_where_self(&ok, &t.f_zeros_like()?)?)
}

/// Copies a 2-D f64 tensor into a row-major `Vec<f64>` with its shape.
pub fn to_vec2(t: &Tensor) -> Result<(Vec<f64>, usize, usize)> {
    let size = t.size();
    let (r, c) = match size.as_slice() {
        [r, c] => (*r as usize, *c as usize),
        other => {
            return Err(Error::Mismatch(format!(
                "expected a 2-D tensor, got shape {other:?}"
            )))
        }
    };
    let flat = t
        .f_to_kind(Kind::Double)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    let v: Vec<f64> = Vec::<f64>::try_from(&flat)?;
    Ok((v, r, c))
}

/// Copies a 1-D tensor into a `Vec<f64>`.
pub fn to_vec1(t: &Tensor) -> Result<Vec<f64>> {
    let flat = t
        .f_to_kind(Kind::Double)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<f64>::try_from(&flat)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row loop agrees with libtorch's f64 two-pass moments.
    #[test]
    fn row_moments_match_the_tensor_form() {
        let _rng = crate::device::rng_guard(Some(5));
        let x = Tensor::randn([37, 11], (Kind::Float, Device::Cpu)).exp();
        let m = Moments::of(&x).unwrap();
        let x64 = x.to_kind(Kind::Double);
        let mean = x64.mean_dim(Some(&[0i64][..]), false, Kind::Double);
        let var = x64.var_dim(Some(&[0i64][..]), true, false);
        let dm = f64::try_from((m.mean - mean).abs().max()).unwrap();
        let dv = f64::try_from((m.var - var).abs().max()).unwrap();
        assert!(dm < 1e-12 && dv < 1e-12, "mean {dm}, var {dv}");
        let one = Moments::of(&x.narrow(0, 0, 1)).unwrap();
        assert!(f64::try_from(one.var.get(0)).unwrap().is_nan());
    }
}
